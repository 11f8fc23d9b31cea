"""One image or mask file read into a uint8 tensor as every viewer shows it, or a DataError naming the file.

Images, `read_image(path)`: (3, H, W) uint8 RGB.
  - the EXIF orientation of a JPEG or PNG is applied, so that image and mask line up as a viewer shows them
    (a phone or camera often stores its pixels sideways with an orientation tag);
  - grayscale, 1-bit, palette, CMYK and images with alpha become RGB (alpha is dropped);
  - 16-bit pixels become 8-bit by their high byte (value >> 8), as Pillow itself reads 16-bit colour PNGs:
    0..65535 maps onto 0..255, never clipped; float pixels in [0, 1] are scaled by 255.
Masks, `read_mask(path)`: (1, H, W) uint8 in {0, 1}, read the same way, then decided per file by its values:
  0 and 255 (or only one of them)   255 is lesion: the usual mask
  0 and 1                           1 is lesion: an 8-bit PNG that looks black ("0/1")
  0 and one value below 128         that value is lesion: a label map of two classes ("0/2", "0/3", ...)
  several values, all below 128     a label map of several classes ("0/1/2"): read as non-zero here, and
                                    refused for a whole split (minunet.data.masks)
  any other values                  binarised at > 127: anti-aliased edges, resampling, noise ("grey")
  (16-bit masks: values up to 255 as they are, so 0/1, 0/255 and labels read as above; otherwise by their
  high byte; label maps of K > 2 classes by their values, so that a value beyond K is seen.) A mask in colour,
  or with transparent pixels,
  is refused: which pixels are lesion would be a guess.
"""
import os

import torch
from PIL import Image, ImageOps

from ..errors import DataError, Fix, one_line
from ..transforms import grayscale, pil_to_tensor

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes of 16-bit grayscale (I: 32-bit)


def file_problem(path):
    """Why `path` cannot be an image file (a folder, a broken link, missing, empty), or None."""
    if os.path.islink(path) and not os.path.exists(path):
        return f"it is a broken link (to {os.readlink(path)}, which does not exist): fix or remove the link"
    if os.path.isdir(path):
        return "it is a folder, not an image file: move or rename it"
    if not os.path.exists(path):
        return "no such file"
    if os.path.getsize(path) == 0:
        return "the file is empty (0 bytes): copy it again, or remove it"
    return None


def open_image(path):
    """An image file, decoded and turned by its EXIF orientation (as viewers show it), as a PIL image.

    Raises DataError, one line naming the file, when it cannot be read.
    """
    problem = file_problem(path)
    if problem:
        raise DataError(f"cannot read {path}: {problem}")
    try:
        with Image.open(path) as img:
            img.load()
            return ImageOps.exif_transpose(img)
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied: make it readable (chmod a+r)")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read {path}: {one_line(e)} (corrupt or truncated file?)")


def deep_values(img, path):
    """The pixels of a 16-bit or float grayscale image as (1, H, W): int32 in [0, 65535], or float in [0, 1].

    Raises DataError for 32-bit integers beyond 16 bits and floats outside [0, 1] (no scale fits them).
    """
    if img.mode == "F":
        values = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.float32)
        low, high = values.min().item(), values.max().item()
        if not (0 <= low and high <= 1):  # also catches NaN
            raise DataError(f"cannot read {path}: its floating-point pixels run from {low:g} to {high:g}, "
                            f"not 0 to 1: save it as an 8-bit image")
    else:
        wide = img if img.mode == "I" else img.convert("I")  # I;16, I;16B, ... -> 32-bit, values kept
        values = torch.frombuffer(bytearray(wide.tobytes()), dtype=torch.int32)
        low, high = values.min().item(), values.max().item()
        if low < 0 or high > 65535:
            raise DataError(f"cannot read {path}: its pixels run from {low} to {high}, beyond 16 bits: "
                            f"save it as an 8- or 16-bit image")
    return values.view(1, img.height, img.width)


def to_8bit(values):
    """deep_values' pixels as (1, H, W) uint8: 16-bit by the high byte (value >> 8), float times 255."""
    if values.dtype == torch.float32:
        return (values * 255).round().to(torch.uint8)
    return (values >> 8).to(torch.uint8)


def image_tensor(img, path):
    """An opened image as (3, H, W) uint8 RGB (see the module docstring)."""
    if img.mode in SIXTEEN_BIT_MODES or img.mode == "F":
        return to_8bit(deep_values(img, path)).expand(3, -1, -1).contiguous()  # (3, H, W) gray
    if "transparency" in img.info:  # a palette or gray image with a transparent colour: through RGBA
        img = img.convert("RGBA")
    return pil_to_tensor(img, mode="RGB")


def mask_levels(img, path):
    """An opened mask's grey levels as (1, H, W) uint8 (16-bit masks holding values up to 255 keep them).

    Raises DataError for a mask in colour or with transparent pixels.
    """
    if img.mode in SIXTEEN_BIT_MODES or img.mode == "F":
        values = deep_values(img, path)
        return values.to(torch.uint8) if img.mode != "F" and values.max() <= 255 else to_8bit(values)
    if img.mode in ("1", "L") and "transparency" not in img.info:
        return pil_to_tensor(img, mode="L")
    rgba = pil_to_tensor(img, mode="RGBA")  # (4, H, W): colour and alpha of any other mode
    if (rgba[3] < 255).any():
        raise DataError(f"mask {path} has transparent pixels: save it without transparency, "
                        f"0 for background and 255 for lesion")
    if not (torch.equal(rgba[0], rgba[1]) and torch.equal(rgba[1], rgba[2])) and img.mode == "P":
        values = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).unique().tolist()  # stored indices
        shown = ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
        k = values[-1] + 1  # the classes, if the values are class indices (2: what was read here, no fix)
        raise DataError(f"mask {path} is a palette image in colour holding the values {shown}",
                        otherwise="save it in grayscale, 0 for background and 255 for lesion",
                        fix=[Fix(classes=k, note="if they are class indices")] if k > 2 else [])
    if not (torch.equal(rgba[0], rgba[1]) and torch.equal(rgba[1], rgba[2])):
        raise DataError(f"mask {path} is in colour (its red, green and blue differ): save it in grayscale, "
                        f"0 for background and 255 for lesion")
    return rgba[:1].clone()  # (1, H, W)


def mask_kind(levels):
    """How a mask's grey levels read: "empty" (all 0), "0/255", a label map "0/v" or "0/v/w/..." (its values,
    all below 128: "0/1", "0/2", "0/1/2"), or "grey" (other values, some above 127)."""
    counts = torch.bincount(levels.flatten(), minlength=256)  # (256,) pixels of each value
    values = counts.nonzero().flatten().tolist()
    if values == [0]:
        return "empty"
    if set(values) <= {0, 255}:
        return "0/255"
    if values[-1] <= 127:  # binarising at > 127 would leave nothing: the values are labels
        return "/".join(str(v) for v in [0] + [v for v in values if v])
    return "grey"


def label_values(kind):
    """The non-zero values of a label map's kind ("0/2" -> [2], "0/1/2" -> [1, 2]); [] for other kinds."""
    return [] if kind in ("empty", "0/255", "grey") else [int(v) for v in kind.split("/")[1:]]


def binarise(levels, kind):
    """A mask's grey levels as (1, H, W) uint8 in {0, 1}: non-zero is lesion in a label map ("0/1", "0/2",
    ...), > 127 in the others."""
    return (levels > (0 if label_values(kind) else 127)).to(torch.uint8)


def mask_tensor(img, path, classes=2):
    """An opened mask as ((1, H, W) uint8 in {0, 1}, its kind: "empty", "0/255", "0/1", ... or "grey").
    classes K > 2: the label map as it is, (1, H, W) uint8 class indices (a palette PNG's indices, not its
    colours; a 16-bit map's values, int32), and the kind "classes" (the caller checks them against K)."""
    if classes > 2:
        if img.mode == "P":  # the stored indices; converting would give the palette's colours
            w, h = img.size
            return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(1, h, w), "classes"
        if img.mode in SIXTEEN_BIT_MODES:  # the values, not their high byte: a stray 300 stays 300
            return deep_values(img, path), "classes"
        return mask_levels(img, path), "classes"
    levels = mask_levels(img, path)
    kind = mask_kind(levels)
    return binarise(levels, kind), kind


def read_image(path):
    """An image file as (3, H, W) uint8 RGB, as viewers show it; DataError naming the file if unreadable."""
    return image_tensor(open_image(path), path)


def read_mask(path):
    """A mask file as ((1, H, W) uint8 in {0, 1}, kind); kind says how its values were read (see mask_kind)."""
    return mask_tensor(open_image(path), path)


def read_pair(image_path, mask_path, classes=2):
    """An image (3, H, W) uint8, its mask (1, H, W) uint8 in {0, 1} (class indices for classes > 2), and the
    mask's kind.

    Raises DataError naming both files when the mask's size (as shown) is not the image's.
    """
    img, msk = open_image(image_path), open_image(mask_path)
    if img.size != msk.size:
        raise DataError(f"mask {mask_path} is {msk.size[0]}x{msk.size[1]} but its image {image_path} is "
                        f"{img.size[0]}x{img.size[1]}" + size_hint(image_path, img.size, msk.size))
    return (image_tensor(img, image_path), *mask_tensor(msk, mask_path, classes))


def size_hint(image_path, shown, mask_size):
    """What to do about a mask of another size: the EXIF orientation when it explains the difference."""
    with Image.open(image_path) as stored:
        if stored.size != shown and stored.size == mask_size:
            return (f" as shown (its EXIF orientation turns the stored {stored.size[0]}x{stored.size[1]} "
                    f"pixels): draw the mask on the image as viewers show it, or remove the image's orientation tag")
    return ": a mask must have its image's width and height"


def holds_colour(images):
    """Whether images (..., C, H, W) hold colour: some pixel whose red, green and blue differ (gray saved as
    RGB holds none; one channel never does)."""
    if images.shape[-3] == 1:
        return False
    return not (torch.equal(images[..., 0, :, :], images[..., 1, :, :])
                and torch.equal(images[..., 1, :, :], images[..., 2, :, :]))


def as_channels(images, channels):
    """Images (N, C, H, W) uint8 with `channels` channels: gray repeated into RGB, or RGB to its luma."""
    if images.shape[1] == channels:
        return images.contiguous()
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()  # (N, 3, H, W)
    return (grayscale(images.float() / 255) * 255).round().to(torch.uint8)  # (N, 1, H, W)
