"""Datasets of skin-lesion images and masks, all made by `make_dataset`: ISIC 2016 (the challenge's folders, or
medsegbench's npz files), your own folder of images and masks, and synthetic lesions.

Every source gives the same kind of dataset, `LesionDataset`, whose items are
  image: (3, S, S) float, normalised with the ImageNet mean and std
  mask:  (1, S, S) float in {0, 1}
  id:    str
Images and masks are decoded and resized to the working size once, when the dataset is built, and kept in
memory as uint8 tensors; an epoch decodes no file. Where the data come from is in the modules named for each
source: minunet.folders (challenge and own folders, read through minunet.images), minunet.npz,
minunet.synthetic. Their names that other code uses are importable from here too.
"""
import hashlib
import os

import torch

from .errors import DataError
from .challenges import LAYOUTS, holds_challenge, load_challenge
from .folders import (IMAGE_EXTENSIONS, MASK_SUFFIX, TEST_IMAGES, TEST_MASKS, TRAIN_IMAGES, TRAIN_MASKS,
                      load_folder, split_ids)
from .images import open_image, read_image, read_mask
from .npz import DEFAULT_ROOT, load_npz, read_npy
from .synthetic import synthetic_lesion, synthetic_split
from .transforms import eval_transforms, train_transforms

__all__ = ["make_dataset", "LesionDataset", "item_seed", "DataError", "MASK_SUFFIX", "IMAGE_EXTENSIONS",
           "TRAIN_IMAGES", "TRAIN_MASKS", "TEST_IMAGES", "TEST_MASKS", "synthetic_lesion", "read_npy",
           "open_image", "read_image", "read_mask", "split_ids"]


class LesionDataset(torch.utils.data.Dataset):
    """Images and masks held in memory at the working size; items are (image, mask, id).

    images: (N, 3, S, S) uint8, masks: (N, 1, S, S) uint8 in {0, 1}, ids: N strings.
    With augment=True (or a dict of train_transforms' options, e.g. dict(scale=0.2, shift=0.1)) each item
    goes through `train_transforms`, drawn from a generator seeded by
    (seed, epoch, index): a seed reproduces every epoch exactly, in any order and with any number of
    DataLoader workers. Call `set_epoch(epoch)` before each epoch for fresh augmentations.
    original_masks (optional): each item's ground truth at its file's own resolution, (1, H, W) uint8,
    returned by `original_mask`. Held in memory, one byte per pixel: 48 KiB for a 256x192 mask (35 MiB for
    the 749 ISIC images at hand), 11.6 MiB for ISIC's largest, 4288x2848.
    notes: one-line remarks on how the files were read (masks holding 0/1, or grey levels), for the user.
    skipped: one-line messages for the image/mask pairs left out as unreadable
    (make_dataset(..., skip_unreadable=True)); empty otherwise.
    """

    def __init__(self, images, masks, ids, augment=False, seed=0, original_masks=None, notes=(), skipped=()):
        self.images, self.masks, self.ids = images, masks, list(ids)
        self.original_masks = original_masks
        self.notes, self.skipped = list(notes), list(skipped)
        self.augment, self.seed = augment, seed
        # in shared memory, so DataLoader workers (persistent ones too) see what set_epoch writes here
        self.shared_epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.generator = torch.Generator() if augment else None
        options = augment if isinstance(augment, dict) else {}  # e.g. dict(scale=0.2, shift=0.1)
        self.transform = train_transforms(self.generator, **options) if augment else eval_transforms()

    def __len__(self):
        return len(self.ids)

    @property
    def epoch(self):
        """The epoch whose augmentations items get (set by set_epoch)."""
        return int(self.shared_epoch)

    def set_epoch(self, epoch):
        """Use the augmentations of epoch `epoch`, in this process and in every DataLoader worker."""
        self.shared_epoch.fill_(epoch)

    def __getitem__(self, index):
        image, mask = self.images[index], self.masks[index]  # (3, S, S) uint8, (1, S, S) uint8
        if self.generator is not None:
            self.generator.manual_seed(item_seed(self.seed, self.epoch, index))
        image, mask = self.transform(image, mask)
        return image, mask.float(), self.ids[index]

    def original_mask(self, index):
        """The ground-truth mask of item `index` at its own resolution, (1, H, W) uint8 in {0, 1}.

        For folders of files, the mask file as read when the dataset was built; for npz and synthetic data
        the stored mask.
        """
        if self.original_masks is None:
            return self.masks[index]
        return self.original_masks[index]

    def subset(self, indices, augment=None):
        """A LesionDataset of the items at `indices`, augmented or not (augment=None: as this one).

        Its images and masks are a view of this dataset's when the indices are a run (i, i + 1, ...), a copy
        otherwise; original masks are shared. Its epoch is its own. Notes and skipped are carried over.
        """
        indices = [range(len(self))[i] for i in indices]  # checked; negatives count from the end
        first = indices[0] if indices else 0
        run = indices == list(range(first, first + len(indices)))
        rows = slice(first, first + len(indices)) if run else torch.tensor(indices)
        originals = None if self.original_masks is None else [self.original_masks[i] for i in indices]
        return LesionDataset(self.images[rows], self.masks[rows], [self.ids[i] for i in indices],
                             self.augment if augment is None else augment, self.seed, originals,
                             self.notes, self.skipped)


def item_seed(seed, epoch, index):
    """The augmentation seed of one item in one epoch: a 32-bit hash of the three (torch's CPU generator
    keeps only 32 bits of its seed, so they cannot simply be packed into one large number)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def make_dataset(name, split, root=None, size=128, augment=False, seed=0, limit=None, skip_unreadable=False):
    """The dataset `name` ("isic2016", "folder" or "synthetic"), split "train", "val" or "test", at `size`.

    "isic2016": the source is decided by what `root` holds:
      - a subfolder named ISBI2016_ISIC_Part1_* (Training_Data, ...): the ISIC challenge's layout. train and val
        are a fixed 90/10 split of the sorted training ids (val = round(n / 10), chosen by SPLIT_SEED, not by
        `seed`); test reads the Test_Data and Test_GroundTruth folders.
      - anything else (root defaults to ~/.medsegbench): medsegbench's isic2016_{size}.npz, with its own
        train/val/test splits, downloaded through medsegbench when missing (size 128, 256 or 512).
    "folder": your own images and masks in root: root/images/ID.jpg (.jpeg, .png) with root/masks/ID.png
      (0/255 or 0/1); train and val split them as the challenge's; test reads root/test/images and
      root/test/masks. (minunet.folders)
    "synthetic" ignores root: SYNTHETIC_SIZES[split] generated lesions, the same for every call.
    size: an int for size x size; folders also take (height, width).
    augment: apply the training augmentation (True, or a dict of train_transforms' options), seeded by `seed`.
    limit: keep at most `limit` images.
    Raises DataError, with a one-line message naming the file, for missing or broken data. With
    skip_unreadable=True an image or mask of a folder that cannot be read leaves its pair out instead (the
    messages are in the dataset's `skipped`); DataError only when no pair can be read. How masks were read,
    where they were not 0/255, is said in the dataset's `notes`.
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}: use train, val or test")
    if name == "synthetic":
        images, masks, ids = synthetic_split(split, size, limit)
        return LesionDataset(images, masks, ids, augment, seed)
    if name not in ("folder", *LAYOUTS):
        raise DataError(f"unknown dataset {name!r}: use {', '.join(LAYOUTS)}, folder or synthetic")
    if root is None and name == "folder":
        raise DataError("--data folder needs --data-root DIR: a folder holding images/ and masks/")
    if root is None:
        root = os.path.expanduser(DEFAULT_ROOT)
        os.makedirs(root, exist_ok=True)
    if not os.path.isdir(root):
        holding = "images/ and masks/" if name == "folder" else \
            "the ISIC 2016 challenge folders or medsegbench's isic2016_{128,256,512}.npz"
        raise DataError(f"data root {root} is not a folder: pass --data-root DIR with {holding}")
    skipped = [] if skip_unreadable else None
    if name == "folder":
        loaded = load_folder(root, split, size, limit, skipped)
    elif holds_challenge(name, root):
        loaded = load_challenge(name, root, split, size, limit, skipped)
    elif name != "isic2016":
        train = LAYOUTS[name].train
        raise DataError(f"--data {name} reads the ISIC {LAYOUTS[name].year} challenge's folders ({train[0]}/, "
                        f"{train[1]}/, ...): {root} holds none of them: pass --data-root DIR holding them")
    else:
        images, masks, ids, notes = load_npz(root, split, size, limit)
        return LesionDataset(images, masks, ids, augment, seed, notes=notes)
    return LesionDataset(loaded.images, loaded.masks, loaded.ids, augment, seed, loaded.original_masks,
                         loaded.notes, skipped or ())
