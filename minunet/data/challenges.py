"""The ISIC challenges' own folders (2016, 2017 and 2018 lesion segmentation), as downloaded from the ISIC archive.

Each year names its folders its own way, and the masks of ID.jpg are ID_Segmentation.png (2016) or
ID_segmentation.png (2017, 2018; read whatever the case). 2016 published a training and a test split, so train
and val are the fixed 90/10 split of its training ids; 2017 and 2018 also published a validation split, which
is val here:

  isic2016                                         isic2017                                 isic2018
  train  ISBI2016_ISIC_Part1_Training_Data/        ISIC-2017_Training_Data/                 ISIC2018_Task1-2_Training_Input/
         ISBI2016_ISIC_Part1_Training_GroundTruth/ ISIC-2017_Training_Part1_GroundTruth/    ISIC2018_Task1_Training_GroundTruth/
  val    (10 % of the training ids)                ISIC-2017_Validation_Data/, ..._Part1_GroundTruth/  ..._Validation_Input/, ..._GroundTruth/
  test   ISBI2016_ISIC_Part1_Test_Data/ and        ISIC-2017_Test_v2_Data/ and              ISIC2018_Task1-2_Test_Input/ and
         ..._Test_GroundTruth/                     ..._Test_v2_Part1_GroundTruth/           ISIC2018_Task1_Test_GroundTruth/

Every split is read by minunet.data.folders.load_split, each mask also kept at its own resolution, so evaluate
scores at the resolution the challenge scored at.
"""
import os
from dataclasses import dataclass

from ..errors import DataError
from .folders import MASK_SUFFIX, TEST_IMAGES, TEST_MASKS, TRAIN_IMAGES, TRAIN_MASKS, load_split


@dataclass(frozen=True)
class Layout:
    """One challenge's folders: (images, masks) of each split (val None: carved from train), and the name
    ending of a mask file."""
    year: int
    train: tuple
    val: object
    test: tuple
    mask_suffix: str = "_segmentation.png"


LAYOUTS = {
    "isic2016": Layout(2016, (TRAIN_IMAGES, TRAIN_MASKS), None, (TEST_IMAGES, TEST_MASKS), MASK_SUFFIX),
    "isic2017": Layout(2017, ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
                       ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth"),
                       ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth")),
    "isic2018": Layout(2018, ("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"),
                       ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth"),
                       ("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth")),
}


def holds_challenge(name, root):
    """Whether the folder `root` holds challenge `name`'s folders (its training images, or its test images)."""
    layout = LAYOUTS[name]
    return any(os.path.isdir(os.path.join(root, folders[0])) for folders in (layout.train, layout.test))


def load_challenge(name, root, split, size, limit=None, skipped=None):
    """One split of challenge `name`'s folders under root (LAYOUTS; read by load_split): a SplitData."""
    layout = LAYOUTS[name]
    folders = {"train": layout.train, "val": layout.val or layout.train, "test": layout.test}[split]
    image_dir, mask_dir = (os.path.join(root, folder) for folder in folders)
    for folder in (image_dir, mask_dir):
        if not os.path.isdir(folder):
            more = [f"{images}/ and {masks}/ for {part}" for part, (images, masks) in
                    (("val", layout.val or (None, None)), ("test", layout.test)) if images]
            raise DataError(f"missing folder {folder}: an ISIC {layout.year} challenge root holds "
                            f"{layout.train[0]}/ and {layout.train[1]}/ (and {', '.join(more)})")
    carve = layout.val is None and split != "test"  # 2016: train and val share the training folder
    return load_split(image_dir, mask_dir, layout.mask_suffix, split, size, limit, skipped, carve)
