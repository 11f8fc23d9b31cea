"""Datasets of images and masks, all made by `make_dataset`: every MedSegBench dataset by name (its npz files;
ISIC 2016 also from the challenge's folders), your own folder of images and masks, and synthetic lesions.

Every source gives the same kind of dataset, `LesionDataset`, whose items are
  image: (C, S, S) float, C = 3 (RGB) or 1 (gray), normalised (minunet.transforms.normalisation)
  mask:  (1, S, S) float in {0, 1}, or class indices 0..K-1 for K > 2 classes
  id:    str
Images and masks are decoded and resized to the working size once, when the dataset is built, and kept in
memory as uint8 tensors; an epoch decodes no file. Where the data come from is in the modules named for each
source: minunet.data.folders (own folders, read through minunet.data.images), minunet.data.challenges,
minunet.data.npz, minunet.data.synthetic.
"""
import hashlib
import os

import torch

from ..errors import DataError, Fix
from .challenges import LAYOUTS, holds_challenge, load_challenge
from .folders import CLASS_NAMES, class_names, load_folder
from .catalog import BINARY, DataSpec, dataset_names, numbered, spec_of
from .images import as_channels, holds_colour
from .modality import ORIENTATIONS, orientation_of
from .npz import DEFAULT_ROOT, load_npz
from .synthetic import SYNTHETIC_CLASSES, synthetic_split
from ..transforms import eval_transforms, normalisation, train_transforms



class LesionDataset(torch.utils.data.Dataset):
    """Images and masks held in memory at the working size; items are (image, mask, id).

    images: (N, C, S, S) uint8 (C = 1 or 3), masks: (N, 1, S, S) uint8 in {0, 1} (class indices 0..K-1 for
    K > 2 classes), ids: N strings. classes: the name of each class, background first (`spec`: channels and
    classes). Images are normalised with `normalisation(C)`.
    With augment=True (or a dict of train_transforms' options, e.g. dict(scale=0.2, shift=0.1), and
    "orientation") each item goes through `train_transforms`, with the flips and rotation that `orientation`
    allows ("any" or "upright": minunet.data.modality; make_dataset decides it from the data), drawn from a
    generator seeded by
    (seed, epoch, index): a seed reproduces every epoch exactly, in any order and with any number of
    DataLoader workers. Call `set_epoch(epoch)` before each epoch for fresh augmentations.
    original_masks (optional): each item's ground truth at its file's own resolution, (1, H, W) uint8,
    returned by `original_mask`. Held in memory, one byte per pixel: 48 KiB for a 256x192 mask (35 MiB for
    the 749 ISIC images at hand), 11.6 MiB for ISIC's largest, 4288x2848.
    notes: one-line remarks on how the files were read (masks holding 0/1, or grey levels), for the user.
    skipped: one-line messages for the image/mask pairs left out as unreadable
    (make_dataset(..., skip_unreadable=True)); empty otherwise.
    """

    def __init__(self, images, masks, ids, augment=False, seed=0, original_masks=None, notes=(), skipped=(),
                 classes=BINARY, orientation="any"):
        self.images, self.masks, self.ids = images, masks, list(ids)
        self.spec = DataSpec(images.shape[1], tuple(classes))
        self.original_masks = original_masks
        self.notes, self.skipped = list(notes), list(skipped)
        self.notes += [note for note in absent_classes(masks, self.spec.classes) if note not in self.notes]
        self.augment, self.seed, self.orientation = augment, seed, orientation
        # in shared memory, so DataLoader workers (persistent ones too) see what set_epoch writes here
        self.shared_epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.generator = torch.Generator() if augment else None
        options = dict(augment) if isinstance(augment, dict) else {}  # e.g. dict(scale=0.2, shift=0.1)
        allowed = ORIENTATIONS[options.pop("orientation", orientation)]  # the flips and turns that keep it true
        options = dict(degrees=allowed["degrees"], flips=allowed["flips"], **options)
        mean, std = normalisation(self.spec.channels)
        self.transform = train_transforms(self.generator, **options, mean=mean, std=std) if augment else \
            eval_transforms(mean, std)

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
        image, mask = self.images[index], self.masks[index]  # (C, S, S) uint8, (1, S, S) uint8
        if self.generator is not None:
            self.generator.manual_seed(item_seed(self.seed, self.epoch, index))
        image, mask = self.transform(image, mask)
        return image, mask.float(), self.ids[index]

    def original_mask(self, index):
        """The ground-truth mask of item `index` at its own resolution, (1, H, W) uint8 (as `masks`).

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
                             self.notes, self.skipped, self.spec.classes, self.orientation)


def absent_classes(masks, classes):
    """A note for each class that no mask holds ((N, 1, S, S) class indices, 0/1 for two classes): the background
    (every pixel foreground), or for K > 2 a foreground class (a model cannot learn it from these images, and an
    image scores it only where it is predicted: minunet.metrics). Masks with no foreground at all are refused
    where they are read (minunet.data.masks)."""
    if not len(masks):
        return []
    counts = torch.bincount(masks.flatten().long(), minlength=len(classes)).tolist()
    images = f"{len(masks)} image" + ("s" if len(masks) != 1 else "")
    notes = []
    if counts[0] == 0:  # every pixel foreground
        every = f"{classes[1]}, so a model that calls every pixel {classes[1]} scores Dice 1 on them" \
            if len(classes) == 2 else "of a foreground class, so a model learns no background, and the scores say " \
                                      "only how it tells those classes apart"
        notes.append(f"class {classes[0]!r} is in no mask of these {images}: every pixel is {every}")
    if len(classes) > 2:  # a foreground class in no mask (two classes: a split without lesion is refused)
        notes += [f"class {name!r} is in no mask of these {images}: an image scores it only where it is predicted "
                  f"there (Dice 0), never as 1" for name, count in zip(classes[1:], counts[1:]) if count == 0]
    return notes


def data_names():
    """Every dataset name make_dataset takes: MedSegBench's (medsegbench.info.INFO), the ISIC challenges' folders
    (LAYOUTS; isic2017 is not in INFO), folder and synthetic."""
    return tuple(dict.fromkeys(dataset_names() + tuple(LAYOUTS) + ("folder", "synthetic")))


def item_seed(seed, epoch, index):
    """The augmentation seed of one item in one epoch: a 32-bit hash of the three (torch's CPU generator
    keeps only 32 bits of its seed, so they cannot simply be packed into one large number)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def make_dataset(name, split, root=None, size=128, augment=False, seed=0, limit=None, skip_unreadable=False,
                 classes=None, channels=None):
    """The dataset `name` (a MedSegBench name such as "isic2016", "kvasir", "busi", "wbc"; "folder" or
    "synthetic"), split "train", "val" or "test", at `size`.

    A MedSegBench name (minunet.data.catalog.dataset_names(), from medsegbench.info.INFO): NAME_{size}.npz in root
    (default ~/.medsegbench), with its own train/val/test splits, downloaded when missing (size 128, 256 or
    512); its channels and classes are INFO's. "isic2016" and "isic2018" read their ISIC challenge's own folders
    instead where root holds them, and "isic2017" (not in INFO) only those (minunet.data.challenges: for 2016, train
    and val are a fixed 90/10 split of the sorted training ids, val = round(n / 10), chosen by SPLIT_SEED, not
    by `seed`).
    "folder": your own images and masks in root: root/images/ID.jpg (.jpeg, .png) with root/masks/ID.png
      (0/255 or 0/1; with classes=K > 2, class indices 0..K-1, 8-bit gray or palette); train and val split them
      as the challenge's; test reads root/test/images and root/test/masks. (minunet.data.folders)
    "synthetic" ignores root: SYNTHETIC_SIZES[split] generated lesions, the same for every call; classes=3
      adds an ink stroke as class 2 (minunet.data.synthetic).
    classes: the number of classes K of "folder" and "synthetic" (default 2: lesion masks; a folder's
      root/classes.txt, one name per line with the background first, names its classes and says K); other data
      have their own. channels: 1 reads the images as gray, 3 as RGB (default: a MedSegBench dataset's own,
      INFO's; RGB for the others).
    size: an int for size x size; folders also take (height, width).
    augment: apply the training augmentation (True, or a dict of train_transforms' options), seeded by `seed`.
    limit: keep at most `limit` images.
    Raises DataError, with a one-line message naming the file, for missing or broken data. With
    skip_unreadable=True an image or mask of a folder that cannot be read leaves its pair out instead (the
    messages are in the dataset's `skipped`); DataError only when no pair can be read. How masks were read,
    where they were not 0/255, is said in the dataset's `notes`.
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}", fix=Fix(split=["train", "val", "test"]))
    known = dataset_names()
    if name not in data_names():
        raise DataError(f"unknown dataset {name!r}: use folder, synthetic, {', '.join(LAYOUTS)} or a MedSegBench "
                        f"name ({', '.join(known[:4])}, ... {len(known)} in medsegbench.info.INFO)")
    own = name in ("folder", "synthetic")  # the data whose number of classes the caller chooses
    if classes is not None and not own:
        raise DataError(f"{name} has its own classes (their number is chosen for folder and synthetic data only)",
                        fix=Fix(classes=None))
    try:
        return read_dataset(name, split, root, size, augment, seed, limit, skip_unreadable, classes, channels)
    except DataError as err:
        if not own:  # a fix of the number of classes is not the caller's to make here
            err.fix = [fix for fix in err.fix if "classes" not in fix.args]
        raise


def read_dataset(name, split, root, size, augment, seed, limit, skip_unreadable, classes, channels):
    """make_dataset's dataset, its arguments checked (classes, channels: None for the data's own)."""
    known, k = dataset_names(), classes or 2
    if name == "synthetic":
        if k not in SYNTHETIC_CLASSES:
            raise DataError(f"synthetic data have 2 or 3 classes (lesion, ink), not {k}", fix=Fix(classes=[2, 3]))
        images, masks, ids = synthetic_split(split, size, limit, k, channels or 3)
        return LesionDataset(images, masks, ids, augment, seed, classes=SYNTHETIC_CLASSES[k],
                             orientation=orientation_of(name, True))
    if k < 2:
        raise DataError(f"{k} classes: a label map has at least 2 classes (background and one more)")
    if root is None and name == "folder":
        raise DataError("folder data need a root folder", fix=Fix(root="DIR", note="holding images/ and masks/"))
    if root is None:
        root = os.path.expanduser(DEFAULT_ROOT)
        os.makedirs(root, exist_ok=True)
    if not os.path.isdir(root):
        challenge = f" or the ISIC {LAYOUTS[name].year} challenge folders" if name in LAYOUTS else ""
        holding = "images/ and masks/" if name == "folder" else \
            f"medsegbench's {name}_{{128,256,512}}.npz" + challenge
        raise DataError(f"data root {root} is not a folder", fix=Fix(root="DIR", note=f"with {holding}"))
    named = class_names(root) if name == "folder" else None  # root/classes.txt, where the user names them
    if named and classes is not None and classes != len(named):
        raise DataError(f"{os.path.join(root, CLASS_NAMES)} names {len(named)} classes ({', '.join(named)}), not "
                        f"{classes}", fix=Fix(classes=None))
    k = len(named) if named else k
    skipped = [] if skip_unreadable else None
    if name == "folder":
        loaded = load_folder(root, split, size, limit, skipped, k)
    elif name in LAYOUTS and holds_challenge(name, root):
        loaded = load_challenge(name, root, split, size, limit, skipped)
    elif name in LAYOUTS and (name not in known or any(holds_challenge(other, root) for other in LAYOUTS)):
        # a challenge medsegbench does not hold (isic2017), or a root of another year's folders: not an npz
        train = LAYOUTS[name].train
        raise DataError(f"{name} reads the ISIC {LAYOUTS[name].year} challenge's folders ({train[0]}/, "
                        f"{train[1]}/, ...): {root} holds none of them", fix=Fix(root="DIR", note="holding them"))
    else:
        images, masks, ids, notes = load_npz(root, split, size, limit, name)
        images = as_channels(images, channels or images.shape[1])  # (N, C, S, S), C as asked or the data's own
        return LesionDataset(images, masks, ids, augment, seed, notes=notes, classes=spec_of(name).classes,
                             orientation=orientation_of(name, holds_colour(images)))
    channels, names = channels or 3, named or (BINARY if k == 2 else numbered(k))
    return LesionDataset(as_channels(loaded.images, channels), loaded.masks, loaded.ids, augment, seed,
                         loaded.original_masks, loaded.notes, skipped or (), names,
                         orientation_of(name, holds_colour(loaded.images)))


def same_classes(model, data):
    """Whether data of the classes `data` are scored as the classes `model` (names, background first): as many,
    and for K > 2 the same names where both name them (a folder's "class 1", ... names none). Two classes are a
    background and one foreground, whatever their names (lesion, foreground)."""
    if len(model) != len(data):
        return False
    return len(model) == 2 or model == data or numbered(len(model)) in (model, data)


def dataset_for(spec, name, split, root=None, size=128, limit=None, skip_unreadable=False):
    """make_dataset's dataset for a model of `spec` (a checkpoint's channels and classes, DataSpec): a folder's
    or synthetic data read with its classes and channels; a MedSegBench name's images converted to its channels
    (said in a note). DataError when the data's classes are not the model's (same_classes)."""
    own = name in ("folder", "synthetic")
    named = name == "folder" and root is not None and os.path.isdir(root) and class_names(root)  # they say K
    dataset = make_dataset(name, split, root, size, limit=limit, skip_unreadable=skip_unreadable,
                           classes=len(spec.classes) if own and not named else None,
                           channels=spec.channels if own else None)
    if not same_classes(spec.classes, dataset.spec.classes):
        raise DataError(f"the model was trained on {len(spec.classes)} classes ({', '.join(spec.classes)}) and "
                        f"{name} has {len(dataset.spec.classes)} ({', '.join(dataset.spec.classes)}): evaluate it "
                        f"on data of its own classes")
    if dataset.spec.channels == spec.channels:
        return dataset
    how = "to gray by their luma" if spec.channels == 1 else "gray repeated into colour"
    note = f"{name}'s images have {dataset.spec.channels} channel(s) and the model reads {spec.channels}: " \
           f"converted {how}"
    return LesionDataset(as_channels(dataset.images, spec.channels), dataset.masks, dataset.ids,
                         original_masks=dataset.original_masks, notes=dataset.notes + [note], skipped=dataset.skipped,
                         classes=dataset.spec.classes, orientation=dataset.orientation)
