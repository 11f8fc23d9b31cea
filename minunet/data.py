"""Datasets of skin-lesion images and masks: ISIC 2016 (the challenge's folders, or medsegbench's npz files)
and synthetic lesions.

Every source gives the same kind of dataset, `LesionDataset`, whose items are
  image: (3, size, size) float, normalised with the ImageNet mean and std
  mask:  (1, size, size) float in {0, 1}
  id:    str
Images and masks are decoded and resized to `size` once, when the dataset is built, and kept in memory as
uint8 tensors; an epoch decodes no file. Which source `make_dataset("isic2016", ..., root=DIR)` reads is
decided by what DIR holds (see `make_dataset`).
"""
import ast
import hashlib
import math
import os
import zipfile

import torch
import torch.nn.functional as F
from PIL import Image

from .errors import DataError, one_line
from .transforms import Resize, eval_transforms, pil_to_tensor, train_transforms

TRAIN_IMAGES = "ISBI2016_ISIC_Part1_Training_Data"
TRAIN_MASKS = "ISBI2016_ISIC_Part1_Training_GroundTruth"
TEST_IMAGES = "ISBI2016_ISIC_Part1_Test_Data"
TEST_MASKS = "ISBI2016_ISIC_Part1_Test_GroundTruth"
MASK_SUFFIX = "_Segmentation.png"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

SPLIT_SEED = 2016  # fixes the train/val split of the challenge's training folder, whatever the training seed
SYNTHETIC_SIZES = {"train": 200, "val": 50, "test": 50}
SYNTHETIC_SEEDS = {"train": 1, "val": 2, "test": 3}  # each split its own images
NPZ_SIZES = (128, 256, 512)
ZENODO_RECORD = "https://zenodo.org/records/13358372"
DEFAULT_ROOT = os.path.join("~", ".medsegbench")


class LesionDataset(torch.utils.data.Dataset):
    """Images and masks held in memory at the working size; items are (image, mask, id).

    images: (N, 3, S, S) uint8, masks: (N, 1, S, S) uint8 in {0, 1}, ids: N strings.
    With augment=True each item goes through `train_transforms`, drawn from a generator seeded by
    (seed, epoch, index): a seed reproduces every epoch exactly, in any order and with any number of
    DataLoader workers. Call `set_epoch(epoch)` before each epoch for fresh augmentations.
    mask_paths (optional): the ground-truth file of each item, read by `original_mask`.
    skipped: one-line messages for the image/mask pairs left out as unreadable
    (make_dataset(..., skip_unreadable=True)); empty otherwise.
    """
    skipped = ()

    def __init__(self, images, masks, ids, augment=False, seed=0, mask_paths=None):
        self.images, self.masks, self.ids = images, masks, list(ids)
        self.mask_paths = mask_paths
        self.seed, self.epoch = seed, 0
        self.generator = torch.Generator() if augment else None
        self.transform = train_transforms(self.generator) if augment else eval_transforms()

    def __len__(self):
        return len(self.ids)

    def set_epoch(self, epoch):
        """Use the augmentations of epoch `epoch`."""
        self.epoch = epoch

    def __getitem__(self, index):
        image, mask = self.images[index], self.masks[index]  # (3, S, S) uint8, (1, S, S) uint8
        if self.generator is not None:
            self.generator.manual_seed(item_seed(self.seed, self.epoch, index))
        image, mask = self.transform(image, mask)
        return image, mask.float(), self.ids[index]

    def original_mask(self, index):
        """The ground-truth mask of item `index` at its own resolution, (1, H, W) uint8 in {0, 1}.

        For the challenge's folders that is the file on disk; for npz and synthetic data the stored mask.
        """
        if self.mask_paths is None:
            return self.masks[index]
        return read_mask(self.mask_paths[index])


def item_seed(seed, epoch, index):
    """The augmentation seed of one item in one epoch: a 32-bit hash of the three (torch's CPU generator
    keeps only 32 bits of its seed, so they cannot simply be packed into one large number)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def make_dataset(name, split, root=None, size=128, augment=False, seed=0, limit=None, skip_unreadable=False):
    """The dataset `name` ("isic2016" or "synthetic"), split "train", "val" or "test", at size x size.

    For "isic2016" the source is decided by what `root` holds:
      - a subfolder named ISBI2016_ISIC_Part1_* (Training_Data, ...): the ISIC challenge's layout. train and val
        are a fixed 90/10 split of the sorted training ids (val = round(n / 10), chosen by SPLIT_SEED, not by
        `seed`); test reads the Test_Data and Test_GroundTruth folders.
      - anything else (root defaults to ~/.medsegbench): medsegbench's isic2016_{size}.npz, with its own
        train/val/test splits, downloaded through medsegbench when missing (size 128, 256 or 512).
    "synthetic" ignores root: SYNTHETIC_SIZES[split] generated lesions, the same for every call.
    augment: apply the training augmentation, seeded by `seed`. limit: keep at most `limit` images.
    Raises DataError, with a one-line message naming the file, for missing or broken data. With
    skip_unreadable=True a challenge image or mask that cannot be read leaves its pair out instead (the
    messages are in the dataset's `skipped`); DataError only when no pair can be read.
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}: use train, val or test")
    if name == "synthetic":
        images, masks, ids = synthetic_split(split, size, limit)
        return LesionDataset(images, masks, ids, augment, seed)
    if name != "isic2016":
        raise DataError(f"unknown dataset {name!r}: use isic2016 or synthetic")
    if root is None:
        root = os.path.expanduser(DEFAULT_ROOT)
        os.makedirs(root, exist_ok=True)
    if not os.path.isdir(root):
        raise DataError(f"data root {root} is not a folder: pass --data-root DIR with the ISIC 2016 "
                        f"challenge folders or medsegbench's isic2016_{{128,256,512}}.npz")
    if any(entry.startswith("ISBI2016_ISIC_Part1_") and os.path.isdir(os.path.join(root, entry))
           for entry in os.listdir(root)):
        skipped = [] if skip_unreadable else None
        images, masks, ids, mask_paths = load_challenge(root, split, size, limit, skipped)
        dataset = LesionDataset(images, masks, ids, augment, seed, mask_paths)
        dataset.skipped = skipped or ()
        return dataset
    images, masks, ids = load_npz(root, split, size, limit)
    return LesionDataset(images, masks, ids, augment, seed)


# ---------------------------------------------------------------------------------------------------------
# The ISIC challenge's folders

def load_challenge(root, split, size, limit=None, skipped=None):
    """Decode one split of the challenge layout at size x size.

    Returns images (N, 3, S, S) uint8, masks (N, 1, S, S) uint8, ids, and the mask files.
    skipped: None to raise DataError on a pair that cannot be read; or a list, to leave such pairs out and
    append their one-line messages to it.
    """
    image_dir, mask_dir = (TEST_IMAGES, TEST_MASKS) if split == "test" else (TRAIN_IMAGES, TRAIN_MASKS)
    image_dir, mask_dir = os.path.join(root, image_dir), os.path.join(root, mask_dir)
    for folder in (image_dir, mask_dir):
        if not os.path.isdir(folder):
            raise DataError(f"missing folder {folder}: an ISIC 2016 challenge root holds "
                            f"{TRAIN_IMAGES}/ and {TRAIN_MASKS}/ (and {TEST_IMAGES}/ and {TEST_MASKS}/ for test)")
    image_files = match_images_and_masks(image_dir, mask_dir)  # id -> image file
    ids = sorted(image_files)
    if split != "test":
        ids = split_ids(ids)[split]
    ids = ids[:limit] if limit is not None else ids
    if not ids:
        raise DataError(f"no images for split {split} in {image_dir}")
    resize = Resize(size)
    images, masks, mask_paths, kept = [], [], [], []
    for id_ in ids:
        mask_path = os.path.join(mask_dir, id_ + MASK_SUFFIX)
        try:
            image, mask = read_pair(os.path.join(image_dir, image_files[id_]), mask_path)
        except DataError as e:
            if skipped is None:
                raise
            skipped.append(str(e))
            continue
        image, mask = resize(image, mask)  # (3, S, S), (1, S, S)
        images.append(image)
        masks.append(mask)
        mask_paths.append(mask_path)
        kept.append(id_)
    if not kept:
        raise DataError(f"none of the {len(ids)} images of split {split} in {image_dir} could be read: "
                        f"{skipped[0]}")
    return torch.stack(images), torch.stack(masks), kept, mask_paths


def match_images_and_masks(image_dir, mask_dir):
    """Map each image id to its file name, checking that every image has a mask and every mask an image."""
    image_files = {}
    for f in sorted(os.listdir(image_dir)):
        stem, ext = os.path.splitext(f)
        if ext.lower() in IMAGE_EXTENSIONS and not f.startswith(".") and not stem.endswith("_superpixels"):
            image_files[stem] = f
    if not image_files:
        raise DataError(f"no images (.jpg, .jpeg or .png) in {image_dir}")
    mask_ids = {f[:-len(MASK_SUFFIX)] for f in os.listdir(mask_dir) if f.endswith(MASK_SUFFIX)}
    for id_ in sorted(image_files):
        if id_ not in mask_ids:
            raise DataError(f"image {os.path.join(image_dir, image_files[id_])} has no mask: "
                            f"expected {os.path.join(mask_dir, id_ + MASK_SUFFIX)}")
    for id_ in sorted(mask_ids):
        if id_ not in image_files:
            raise DataError(f"mask {os.path.join(mask_dir, id_ + MASK_SUFFIX)} has no image "
                            f"{id_}.jpg in {image_dir}")
    return image_files


def split_ids(ids):
    """The fixed 90/10 split of sorted ids: {"train": [...], "val": [...]}, val = round(n / 10) ids.

    An id's place is decided by a hash of SPLIT_SEED and the id, so the split is the same on every machine
    and every version of Python and PyTorch.
    """
    def key(id_):
        return hashlib.sha256(f"{SPLIT_SEED}:{id_}".encode()).hexdigest()
    val = set(sorted(ids, key=key)[:round(len(ids) / 10)])
    return {"train": [i for i in ids if i not in val], "val": [i for i in ids if i in val]}


def open_image(path):
    """Open and decode an image file, or raise DataError naming it."""
    try:
        img = Image.open(path)
        img.load()
        return img
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read {path}: {one_line(e)} (corrupt or truncated file?)")


def read_mask(path):
    """A mask file as (1, H, W) uint8 in {0, 1}: pixels above 127 are lesion.

    Masks should hold only 0 and 255; any other values (from resampling or JPEG-like noise) are binarised
    at > 127. Colour masks are converted to grayscale first.
    """
    return (pil_to_tensor(open_image(path), mode="L") > 127).to(torch.uint8)


def read_pair(image_path, mask_path):
    """An image (3, H, W) uint8 and its mask (1, H, W) uint8 in {0, 1}, checked to have the same size.

    Grayscale, palette and RGBA images are converted to RGB (alpha is dropped).
    """
    img, msk = open_image(image_path), open_image(mask_path)
    if img.size != msk.size:
        raise DataError(f"mask {mask_path} is {msk.size[0]}x{msk.size[1]} but its image {image_path} "
                        f"is {img.size[0]}x{img.size[1]}")
    return pil_to_tensor(img, mode="RGB"), (pil_to_tensor(msk, mode="L") > 127).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------------
# medsegbench's npz files, read without NumPy

NPY_DTYPES = {"u1": torch.uint8, "i1": torch.int8, "b1": torch.bool, "i2": torch.int16, "i4": torch.int32,
              "i8": torch.int64, "f2": torch.float16, "f4": torch.float32, "f8": torch.float64}


def read_npy(data, name="array"):
    """The tensor stored in the bytes of a .npy file (format versions 1 to 3, little-endian)."""
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{name} is not a .npy array")
    major = data[6]
    header_len_size = 2 if major == 1 else 4
    header_len = int.from_bytes(data[8:8 + header_len_size], "little")
    start = 8 + header_len_size + header_len
    header = ast.literal_eval(data[8 + header_len_size:start].decode("latin1"))
    descr, shape = header["descr"], tuple(header["shape"])
    if descr[0] == ">" or descr[1:] not in NPY_DTYPES:
        raise ValueError(f"{name} has dtype {descr}, which minunet does not read")
    count = math.prod(shape)
    flat = torch.frombuffer(data, dtype=NPY_DTYPES[descr[1:]], count=count, offset=start) if count else \
        torch.empty(0, dtype=NPY_DTYPES[descr[1:]])
    if header["fortran_order"]:  # column-major: the reversed shape, then the axes reversed
        return flat.view(shape[::-1]).permute(*reversed(range(len(shape)))).contiguous()
    return flat.view(shape).clone()


def read_npz(path, keys):
    """The arrays `keys` of an npz file (a zip of .npy files), as tensors; DataError when one is missing."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
            for key in keys:
                if key not in names:
                    raise DataError(f"{path} has no array {key!r} (it holds {', '.join(sorted(names))}): "
                                    f"delete it to download it again, or pass --data-root DIR")
            return {key: read_npy(bytearray(z.read(key + ".npy")), f"{path}:{key}") for key in keys}
    except (zipfile.BadZipFile, ValueError, KeyError, SyntaxError, EOFError, OSError) as e:
        raise DataError(f"cannot read {path}: {one_line(e)}: delete it to download it again")


def load_npz(root, split, size, limit=None):
    """One split of medsegbench's isic2016_{size}.npz in root (downloaded when missing).

    Returns images (N, 3, S, S) uint8, masks (N, 1, S, S) uint8 in {0, 1}, and ids isic2016_{split}_{i:04d}.
    Labels stored as 0/1 are used as they are; labels stored as 0/255 are binarised at > 127.
    """
    if size not in NPZ_SIZES:
        raise DataError(f"medsegbench's isic2016 comes at 128, 256 or 512 px, not {size}: pass --size 128, "
                        f"256 or 512, or --data-root DIR with the ISIC challenge folders for any size")
    path = os.path.join(root, f"isic2016_{size}.npz")
    if not os.path.exists(path):
        download_npz(root, size)
    arrays = read_npz(path, [f"{split}_images", f"{split}_label"])
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_label"]
    if images.dim() == 3:  # (N, H, W) grayscale -> (N, H, W, 3)
        images = images[..., None].expand(-1, -1, -1, 3)
    if labels.dim() == 4:  # (N, H, W, 1) -> (N, H, W)
        labels = labels[..., 0]
    if images.dim() != 4 or images.shape[-1] != 3 or labels.shape != images.shape[:3]:
        raise DataError(f"{path}: {split}_images is {tuple(images.shape)} and {split}_label is "
                        f"{tuple(labels.shape)}; expected (N, H, W, 3) and (N, H, W)")
    if images.shape[1:3] != (size, size):
        raise DataError(f"{path} holds {images.shape[1]}x{images.shape[2]} images, not {size}x{size}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    images = images.to(torch.uint8).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    threshold = 127 if labels.numel() and labels.max() > 1 else 0
    masks = (labels > threshold).to(torch.uint8)[:, None]  # (N, 1, S, S)
    ids = [f"isic2016_{split}_{i:04d}" for i in range(len(images))]
    return images, masks, ids


def download_npz(root, size):
    """Fetch isic2016_{size}.npz into root, through medsegbench's URL and MD5 and torchvision's download_url."""
    filename = f"isic2016_{size}.npz"
    try:
        from medsegbench.info import INFO
        from torchvision.datasets.utils import download_url
        info = INFO["isic2016"]
        download_url(info[f"url_{size}"], root=root, filename=filename, md5=info[f"MD5_{size}"])
    except Exception as e:
        raise DataError(
            f"{os.path.join(root, filename)} is missing and could not be downloaded "
            f"({type(e).__name__}: {one_line(e)}): download {filename} from {ZENODO_RECORD} "
            f"into {root}, or pass --data-root DIR holding it or the ISIC 2016 challenge folders "
            f"({TRAIN_IMAGES}/, ...), or use --data synthetic")
    if not os.path.exists(os.path.join(root, filename)):
        raise DataError(f"{os.path.join(root, filename)} is missing after download: get it from "
                        f"{ZENODO_RECORD}, or pass --data-root DIR")


# ---------------------------------------------------------------------------------------------------------
# Synthetic lesions

def synthetic_split(split, size, limit=None):
    """SYNTHETIC_SIZES[split] synthetic lesions: images (N, 3, S, S) uint8, masks (N, 1, S, S), ids.

    Image i of a split is always the same: its generator is seeded by the split and i.
    """
    n = SYNTHETIC_SIZES[split] if limit is None else min(limit, SYNTHETIC_SIZES[split])
    g = torch.Generator()
    images, masks = [], []
    for i in range(n):
        g.manual_seed(SYNTHETIC_SEEDS[split] * 1_000_000 + i)
        image, mask = synthetic_lesion(size, g)
        images.append(image)
        masks.append(mask)
    ids = [f"synthetic_{split}_{i:04d}" for i in range(n)]
    return torch.stack(images), torch.stack(masks), ids


def smooth_noise(size, cells, generator):
    """Smooth random field (size, size), about unit variance: a cells x cells grid of normals, upsampled."""
    coarse = torch.randn(1, 1, cells, cells, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0, 0]


def synthetic_lesion(size=128, generator=None):
    """A dermoscopy-like image and its exact mask: (3, size, size) uint8 and (1, size, size) uint8 in {0, 1}.

    Skin-toned background with blotches and vignetting; one irregular brown-to-dark lesion of random size,
    shape, position and contrast (the mask is exactly the lesion's outline); 0 to 4 dark hairs on top, which
    are not part of the mask.
    """
    g = generator

    def rand(low, high):
        return low + (high - low) * torch.rand((), generator=g).item()

    t = (torch.arange(size) + 0.5) / size * 2 - 1  # (S,) pixel centres in [-1, 1]
    y, x = torch.meshgrid(t, t, indexing="ij")  # (S, S) each

    # skin: a beige-pink tone, soft blotches, darker towards the corners
    skin = torch.tensor([rand(0.75, 0.95), rand(0.55, 0.75), rand(0.45, 0.65)])[:, None, None]  # (3, 1, 1)
    vignette = 1 - rand(0.1, 0.5) * ((x * x + y * y) / 2) ** rand(1.0, 2.0)  # (S, S)
    image = skin * (1 + 0.05 * smooth_noise(size, 4, g)) * vignette  # (3, S, S)

    # lesion: radius(angle) = r0 (1 + sum_k a_k cos(k angle + phase_k)), stretched, turned and moved
    cx, cy, turn, stretch = rand(-0.3, 0.3), rand(-0.3, 0.3), rand(0, math.pi), rand(0.6, 1.0)
    u = (x - cx) * math.cos(turn) + (y - cy) * math.sin(turn)  # (S, S) along the long axis
    v = ((y - cy) * math.cos(turn) - (x - cx) * math.sin(turn)) / stretch  # (S, S) along the short axis
    dist, angle = torch.sqrt(u * u + v * v), torch.atan2(v, u)  # (S, S) each
    r0 = rand(0.15, 0.75)
    radius = torch.full_like(dist, r0)
    for k in range(2, 8):
        radius = radius + r0 * rand(0, 0.3 / k) * torch.cos(k * angle + rand(0, 2 * math.pi))
    mask = dist < radius  # (S, S) bool: the ground truth

    # lesion colour: light brown to near black, darker and mottled towards the centre, with a soft edge
    dark = rand(0, 1)
    brown = torch.tensor([0.55 - 0.4 * dark, 0.35 - 0.27 * dark, 0.25 - 0.19 * dark])[:, None, None]
    centre = 1 - rand(0, 0.4) * (1 - dist / radius).clamp(0, 1)  # (S, S)
    mottle = 1 + 0.1 * smooth_noise(size, 12, g)  # (S, S)
    colour = brown * centre * mottle  # (3, S, S)
    opacity = rand(0.5, 1.0) * torch.sigmoid((radius - dist) / rand(0.005, 0.03))  # (S, S), 0.5 at the edge
    image = image + opacity * (colour - image)

    # hairs: thin dark gently curved strokes
    for _ in range(int(rand(0, 5))):
        phi, offset, bend = rand(0, math.pi), rand(-0.9, 0.9), rand(-0.5, 0.5)
        along = -x * math.sin(phi) + y * math.cos(phi)  # (S, S)
        across = x * math.cos(phi) + y * math.sin(phi) - offset - bend * along * along  # (S, S)
        width = rand(0.5, 1.2) * 2 / size  # half a pixel to a pixel and a bit
        start, length = rand(-1, 0.5), rand(0.5, 1.5)
        on = ((along > start) & (along < start + length)).float()  # (S, S)
        ink = (1 - across.abs() / width).clamp(0, 1) * on * 0.85  # (S, S)
        image = image + ink * (torch.tensor([0.12, 0.08, 0.06])[:, None, None] - image)

    image = image + 0.015 * torch.randn(image.shape, generator=g)  # sensor noise
    image = (image.clamp(0, 1) * 255).round().to(torch.uint8)  # (3, S, S)
    return image, mask[None].to(torch.uint8)  # (3, S, S), (1, S, S)
