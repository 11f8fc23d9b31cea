"""Folders of image and mask files: the ISIC 2016 challenge's layout (the other years: minunet.data.challenges), and
your own folder.

Both are read by one path, `load_split`: pair each image with its mask by id (the file name without its
suffix), read each pair once (minunet.data.images), resize it to the working size, and keep each mask also at its
own resolution. The layouts differ only in where the files are and how masks are named:

  challenge root (isic2016)                    your own folder (folder)
    ISBI2016_ISIC_Part1_Training_Data/ID.jpg     images/ID.jpg (.jpeg, .png)
    ISBI2016_ISIC_Part1_Training_GroundTruth/    masks/ID.png
      ID_Segmentation.png
    ISBI2016_ISIC_Part1_Test_Data/ (and ...      test/images/ and test/masks/ (for the test split)
      Test_GroundTruth/) for the test split

train and val are the same fixed 90/10 split of the sorted ids in both (`split_ids`); test is its own folders.
"""
import collections
import hashlib
import os
import unicodedata

import torch

from ..errors import DataError, Fix, no_arguments, one_line
from .images import read_pair
from .masks import background_only, check_class_indices, split_notes
from ..transforms import Resize

TRAIN_IMAGES = "ISBI2016_ISIC_Part1_Training_Data"
TRAIN_MASKS = "ISBI2016_ISIC_Part1_Training_GroundTruth"
TEST_IMAGES = "ISBI2016_ISIC_Part1_Test_Data"
TEST_MASKS = "ISBI2016_ISIC_Part1_Test_GroundTruth"
MASK_SUFFIX = "_Segmentation.png"  # the challenge's mask of ID.jpg is ID_Segmentation.png
FOLDER_MASK_SUFFIX = ".png"  # your own folder's mask of ID.jpg is ID.png
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLIT_SEED = 2016  # fixes the train/val split, whatever the training seed

SplitData = collections.namedtuple("SplitData", "images masks ids original_masks notes")
SplitData.__doc__ = """One split read from folders: images (N, 3, S, S) uint8, masks (N, 1, S, S) uint8 in {0, 1},
ids, original_masks (N tensors (1, H, W) uint8, each at its file's resolution), notes (one-line strings)."""


def split_ids(ids):
    """The fixed 90/10 split of sorted ids: {"train": [...], "val": [...]}, val = round(n / 10) ids.

    An id's place is decided by a hash of SPLIT_SEED and the id, so the split is the same on every machine
    and every version of Python and PyTorch.
    """
    def key(id_):
        return hashlib.sha256(f"{SPLIT_SEED}:{id_}".encode()).hexdigest()
    val = set(sorted(ids, key=key)[:round(len(ids) / 10)])
    return {"train": [i for i in ids if i not in val], "val": [i for i in ids if i in val]}


def index_files(folder, suffixes, what):
    """{id: file name} of the files in `folder` whose names end with one of `suffixes` (any case).

    The id is the name without its suffix, in Unicode's composed form (NFC): macOS writes "lésion.png" with
    a decomposed é (NFD), Linux and Windows usually composed, so both spellings pair. Hidden files and the
    challenge's *_superpixels maps are left out. Raises DataError naming both files when two files have the
    same id (ISIC_1.jpg and ISIC_1.png).
    """
    files = {}
    for name in sorted(os.listdir(folder)):
        suffix = next((s for s in suffixes if name.lower().endswith(s.lower())), None)
        if suffix is None or name.startswith("."):
            continue
        id_ = unicodedata.normalize("NFC", name[:-len(suffix)])
        if id_.endswith("_superpixels"):
            continue
        if id_ in files:
            raise DataError(f"two {what}s for the id {id_}: {os.path.join(folder, files[id_])} and "
                            f"{os.path.join(folder, name)}: keep one of them")
        files[id_] = name
    return files


def pair_files(image_dir, mask_dir, mask_suffix):
    """{id: (image file, mask file)}, checking that every image has a mask and every mask an image."""
    images = index_files(image_dir, IMAGE_EXTENSIONS, "image")
    if not images:
        raise DataError(f"no images (.jpg, .jpeg or .png) in {image_dir}")
    masks = index_files(mask_dir, (mask_suffix,), "mask")
    for id_ in sorted(images):
        if id_ not in masks:
            expected = id_ + mask_suffix
            raise DataError(f"image {os.path.join(image_dir, images[id_])} has no mask: expected "
                            f"{os.path.join(mask_dir, expected)}" + near_miss(mask_dir, id_, expected))
    for id_ in sorted(masks):
        if id_ not in images:
            raise DataError(f"mask {os.path.join(mask_dir, masks[id_])} has no image {id_}.jpg, "
                            f"{id_}.jpeg or {id_}.png in {image_dir}")
    return {id_: (os.path.join(image_dir, images[id_]), os.path.join(mask_dir, masks[id_])) for id_ in images}


def near_miss(mask_dir, id_, expected):
    """' (found NAME: ...)' when mask_dir holds a file named like the expected mask but not quite, else ''."""
    for name in sorted(unicodedata.normalize("NFC", name) for name in os.listdir(mask_dir)):
        rest = name[len(id_):]
        if name != expected and name.startswith(id_) and rest[:1] in (".", "_"):
            return f" (found {name}: masks are PNG files named {expected})"
    return ""


def load_split(image_dir, mask_dir, mask_suffix, split, size, limit=None, skipped=None, carve=None, classes=2):
    """Read one split of a pair of image and mask folders at `size` (an int, or (height, width)): a SplitData.

    carve (default: split is not "test"): split "train" / "val" takes its share of the fixed 90/10 split of the
    sorted ids; otherwise the split takes every id (a test folder, or a challenge's own validation folder).
    skipped: None to raise DataError on a pair that cannot be read; or a list, to leave such pairs out and
    append their one-line messages to it (DataError only when no pair can be read). classes K > 2: masks are
    label maps of class indices 0..K-1, kept as they are.
    """
    pairs = pair_files(image_dir, mask_dir, mask_suffix)
    ids = sorted(pairs)
    if split != "test" if carve is None else carve:
        ids = split_ids(ids)[split]
    ids = ids[:limit] if limit is not None else ids
    if not ids:
        few = f": val takes round(n / 10) of its {len(pairs)} images, so it needs at least 6" if split == "val" else ""
        raise DataError(f"no images for split {split} in {image_dir}{few}")
    resize = Resize(size)
    images, masks, kept, originals, kinds, resized = [], [], [], [], [], []
    for id_ in ids:
        try:
            image, mask, kind = read_pair(*pairs[id_], classes)  # (3, H, W), (1, H, W) uint8
        except DataError as e:
            if skipped is None:
                raise
            skipped.append(e.line(no_arguments))  # a note, not advice
            continue
        small_image, small_mask = resize(image, mask)  # (3, S, S), (1, S, S)
        images.append(small_image)
        masks.append(small_mask)
        originals.append(mask)
        kept.append(id_)
        kinds.append((kind, pairs[id_][1]))
        if split == "train" and kind != "empty" and not small_mask.any():  # its lesion lost at this size
            resized.append(pairs[id_][1])
    if not kept:
        raise DataError(f"none of the {len(ids)} images of split {split} in {image_dir} could be read: "
                        f"{skipped[0]}")
    if classes > 2:
        for labels, (_, path) in zip(originals, kinds):  # the first file with a value beyond the classes
            check_class_indices(labels, classes, f"mask {path} holds")
        masks, originals = [m.to(torch.uint8) for m in masks], [m.to(torch.uint8) for m in originals]
        labels = torch.cat([m.flatten() for m in originals])  # every class index of the split
        background_only(labels, classes, len(kept), split, f"masks in {mask_dir}")
        notes = []
    else:
        notes = split_notes(kinds, split, mask_dir, resize.size, resized)
    return SplitData(torch.stack(images), torch.stack(masks), kept, originals, notes)


CLASS_NAMES = "classes.txt"  # a folder's class names, one per line, the background first


def class_names(root):
    """The class names in root/classes.txt (one per line, the background first; blank lines and surrounding
    spaces left out), or None where there is no such file. DataError for fewer than two names or one named
    twice."""
    path = os.path.join(root, CLASS_NAMES)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            names = tuple(line.strip() for line in f if line.strip())
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path} cannot be read as text ({one_line(err)})") from None
    if len(names) < 2 or len(set(names)) < len(names):
        raise DataError(f"{path} names {', '.join(names) or 'no class'}: it needs one name per class, each once, "
                        f"the background first and at least one more")
    return names


def load_folder(root, split, size, limit=None, skipped=None, classes=2):
    """One split of your own folder root: images/ and masks/ (train, val), test/images/ and test/masks/ (test);
    classes K > 2: masks of class indices 0..K-1."""
    base = os.path.join(root, "test") if split == "test" else root
    image_dir, mask_dir = os.path.join(base, "images"), os.path.join(base, "masks")
    for folder in (image_dir, mask_dir):
        if not os.path.isdir(folder):
            isic = sorted(name for name in os.listdir(root) if name.startswith("ISBI2016_ISIC_Part1_")
                          or (name.startswith("isic2016_") and name.endswith(".npz")))
            if isic:  # the layouts of the dataset isic2016
                what = "medsegbench's npz files" if isic[0].endswith(".npz") else "the ISIC 2016 challenge folders"
                raise DataError(f"{root} holds {what} ({isic[0]}, ...), not images/ and masks/",
                                fix=Fix(name="isic2016", root=root))
            where = "test/images/ and test/masks/ for the test split" if split == "test" else "images/ and masks/"
            raise DataError(f"missing folder {folder}: the folder dataset reads {where} in {root}",
                            otherwise="create it, with the images (.jpg, .jpeg or .png) and one mask <image name>.png "
                                      "per image (0 background, 255 or 1 lesion)")
    return load_split(image_dir, mask_dir, FOLDER_MASK_SUFFIX, split, size, limit, skipped, classes=classes)
