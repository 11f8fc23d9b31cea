"""MedSegBench's npz files (NAME_{128,256,512}.npz, for every dataset in medsegbench.info.INFO: isic2016, kvasir,
busi, wbc, ...), read without NumPy and downloaded from the URL INFO names when missing, its MD5 checked."""
import ast
import math
import os
import zipfile

import torch

from ..errors import DataError, Fix, one_line
from .challenges import LAYOUTS
from .images import as_channels, binarise, label_values, mask_kind
from .masks import background_only, check_class_indices, check_labels, empty_masks
from .catalog import foreground_is_non_zero, npz_source, spec_of
from ..transforms import height_width

NPZ_SIZES = (128, 256, 512)
DEFAULT_ROOT = os.path.join("~", ".medsegbench")  # where the npz files are kept when no root is given

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
                    raise DataError(f"{path} has no array {key!r} (it holds {', '.join(sorted(names))})",
                                    otherwise="delete it to download it again", fix=Fix(root="DIR"))
            return {key: read_npy(bytearray(z.read(key + ".npy")), f"{path}:{key}") for key in keys}
    except (zipfile.BadZipFile, ValueError, KeyError, SyntaxError, EOFError, OSError) as e:
        raise DataError(f"cannot read {path}: {one_line(e)}: delete it to download it again")


def load_npz(root, split, size, limit=None, name="isic2016"):
    """One split of MedSegBench's NAME_{size}.npz in root (downloaded when missing), `name` a key of INFO.

    Returns images (N, C, S, S) uint8 (C = INFO's n_channels_im: 1 or 3; other dtypes read by `pixels`), masks
    (N, 1, S, S) uint8, ids NAME_{split}_{i:04d}, and notes (one-line strings). Two classes (INFO's
    pixel_labels): labels are read as mask files are (minunet.data.images.mask_kind, over the split): 0/1 and 0/v
    (v < 128) as non-zero, 0/255 and grey levels at > 127, into {0, 1}; several label values and a split of empty
    masks are refused (minunet.data.masks); where INFO names the foreground "non-zero" (pandental,
    dynamicnuclear), every label above 0 is foreground. K > 2 classes: labels are class indices 0..K-1, kept as
    they are (larger ones refused). A split of no images, and labels that are not whole numbers, are refused.
    """
    refuse_own_folder(root, name)
    height, width = height_width(size)
    size = height if height == width else size  # a square, given as 128 or as (128, 128)
    if size not in NPZ_SIZES:
        challenge = [Fix(root="DIR", note=f"holding{challenge_folders(name)} for any size")] if name in LAYOUTS \
            else []
        raise DataError(f"medsegbench's {name} comes at 128, 256 or 512 px, not {size}",
                        fix=[Fix(size=list(NPZ_SIZES))] + challenge)
    spec = spec_of(name)
    path = os.path.join(root, f"{name}_{size}.npz")
    if not os.path.exists(path):
        check_download_folder(root, os.path.basename(path), name)
        download_npz(root, size, name)
    arrays = read_npz(path, [f"{split}_images", f"{split}_label"])
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_label"]
    stored = tuple(images.shape)
    if images.dim() == 3:  # (N, H, W) grayscale -> (N, H, W, 1)
        images = images[..., None]
    if labels.dim() == 4:  # (N, H, W, 1) -> (N, H, W)
        labels = labels[..., 0]
    if images.dim() != 4 or images.shape[-1] not in (1, 3) or labels.shape != images.shape[:3]:
        raise DataError(f"{path}: {split}_images is {tuple(images.shape)} and {split}_label is "
                        f"{tuple(labels.shape)}; expected (N, H, W, C) with C = 1 or 3, and (N, H, W)")
    if images.shape[1:3] != (size, size):
        raise DataError(f"{path} holds {images.shape[1]}x{images.shape[2]} images, not {size}x{size}")
    if not len(images):
        raise DataError(f"{path} holds no {split} images ({split}_images is {stored}): every split needs at least "
                        f"one", otherwise="delete it to download it again", fix=Fix(root="DIR", note="holding a "
                                                                                     "complete file"))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    whole_numbers(labels, f"{path}: {split}_label")
    images = as_channels(pixels(images, f"{path}: {split}_images").permute(0, 3, 1, 2), spec.channels)  # (N, C, S, S)
    ids = [f"{name}_{split}_{i:04d}" for i in range(len(images))]
    where = f"masks in {path} ({split}_label)"
    if len(spec.classes) > 2:
        check_class_indices(labels, len(spec.classes), f"{where} hold")
        background_only(labels, len(spec.classes), len(ids), split, where)
        return images, labels.to(torch.uint8)[:, None].contiguous(), ids, []  # (N, 1, S, S) class indices
    if foreground_is_non_zero(name):  # objects numbered 1, 2, ...: all foreground
        masks, notes = (labels != 0).to(torch.uint8)[:, None], []  # (N, 1, S, S)
    else:
        levels = labels if labels.dtype == torch.uint8 else labels.clamp(0, 255).to(torch.uint8)  # (N, S, S)
        kind = mask_kind(levels)
        check_labels([(kind, None)], where, own_classes=False)
        masks = binarise(levels, kind)[:, None]  # (N, 1, S, S)
        notes = [f"{where} hold 0 and {v}, not 0 and 255: read {v} as lesion" for v in label_values(kind) if v > 1]
    empty = [ids[i] for i in (masks.flatten(1).amax(1) == 0).nonzero().flatten().tolist()]
    notes += [note for note in [empty_masks(empty, [], len(ids), split, where)] if note]
    return images, masks, ids, notes


def pixels(images, where):
    """npz images (N, H, W, C) of any dtype as uint8, read as their values say: uint8 as they are, floats in 0..1
    times 255, floats or integers in 0..255 as they are (rounded), integers up to 65535 by their high byte (16
    bits, as image files are read: minunet.data.images). DataError, naming `where`, when no scale fits."""
    if images.dtype == torch.uint8:
        return images
    wide = images.float() if images.dtype in (torch.float16, torch.bfloat16) else images  # NaN is never equal
    if images.is_floating_point() and bool(wide.isnan().any()):
        raise DataError(f"{where} holds not-a-number pixels: save the images as uint8 (0 to 255)")
    low, high = wide.min().item(), wide.max().item()
    if images.is_floating_point() and 0 <= low and high <= 1:
        return (wide * 255).round().to(torch.uint8)
    if 0 <= low and high <= 255:
        return wide.round().to(torch.uint8) if images.is_floating_point() else images.to(torch.uint8)
    if not images.is_floating_point() and 0 <= low and high <= 65535:
        return (images >> 8).to(torch.uint8)
    raise DataError(f"{where} holds pixels from {low:g} to {high:g}, which no scale to 0..255 fits (uint8, floats "
                    f"in 0..1 or 0..255, 16-bit integers): save the images as uint8")


def whole_numbers(labels, where):
    """Raise DataError, naming `where`, when float labels hold values that are not whole numbers (no class)."""
    if labels.is_floating_point():
        wide = labels.float()  # (N, S, S)
        odd = wide[wide != wide.round()]  # NaN included
        if odd.numel():
            shown = ", ".join(f"{v:g}" for v in odd.unique()[:3].tolist())
            raise DataError(f"{where} holds values that are not whole numbers ({shown}, ...): labels are class "
                            f"indices (0 for background); save them as integers")


def refuse_own_folder(root, name="isic2016"):
    """Raise DataError pointing to the dataset "folder" when `root` is a user's own folder (images/ and masks/,
    and no NAME npz file)."""
    if os.path.isdir(os.path.join(root, "images")) and os.path.isdir(os.path.join(root, "masks")) and not any(
            os.path.exists(os.path.join(root, f"{name}_{size}.npz")) for size in NPZ_SIZES):
        reads = f"the ISIC {LAYOUTS[name].year} challenge folders or medsegbench's npz files" if name in LAYOUTS \
            else "medsegbench's npz files"
        raise DataError(f"{root} holds images/ and masks/, a folder of your own ({name} reads {reads})",
                        fix=Fix(name="folder", root=root))


def check_download_folder(root, filename, name="isic2016"):
    """Raise DataError unless `filename` may be downloaded into `root`: the default ~/.medsegbench, or a folder
    holding nothing but npz files (hidden files such as .DS_Store aside), so never a folder of the user's
    own data."""
    if os.path.realpath(root) == os.path.realpath(os.path.expanduser(DEFAULT_ROOT)):
        return
    others = sorted(name for name in os.listdir(root) if not name.startswith(".") and not name.endswith(".npz"))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise DataError(f"{os.path.join(root, filename)} is missing, and minunet downloads it only into an empty "
                        f"folder, one holding medsegbench's npz files, or {DEFAULT_ROOT}, not beside {shown}",
                        fix=[Fix(root="DIR", note=f"holding {filename}{challenge_folders(name, ' or')}"),
                             Fix(name="folder", note="for a folder of images/ and masks/"), Fix(root=None)])


def challenge_folders(name, joined=""):
    """'{joined} the ISIC 2018 challenge folders (ISIC2018_Task1-2_Training_Input/, ...)' for a name that also reads
    its challenge's folders (minunet.data.challenges.LAYOUTS); '' for other names."""
    if name not in LAYOUTS:
        return ""
    return f"{joined} the ISIC {LAYOUTS[name].year} challenge folders ({LAYOUTS[name].train[0]}/, ...)"


def download_npz(root, size, name="isic2016"):
    """Fetch NAME_{size}.npz into root from the URL medsegbench's INFO names, checking INFO's MD5 (torchvision's
    download_url); offline, one line naming the file and where to put it."""
    filename = f"{name}_{size}.npz"
    url, md5 = npz_source(name, size)
    try:
        from torchvision.datasets.utils import download_url
        download_url(url, root=root, filename=filename, md5=md5)
    except Exception as e:
        raise DataError(f"{os.path.join(root, filename)} is missing and could not be downloaded "
                        f"({type(e).__name__}: {one_line(e)})",
                        otherwise=f"download {filename} from {url.split('?')[0]} into {root}",
                        fix=[Fix(root="DIR", note=f"holding it{challenge_folders(name, ' or')}"),
                             Fix(name="synthetic")])
    if not os.path.exists(os.path.join(root, filename)):
        raise DataError(f"{os.path.join(root, filename)} is missing after download",
                        otherwise=f"get it from {url.split('?')[0]}", fix=Fix(root="DIR"))
