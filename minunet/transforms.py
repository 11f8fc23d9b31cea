"""Joint image/mask transforms on tensors, and PIL -> tensor without NumPy.

Every transform is called as `image, mask = t(image, mask)`:
  image: (C, H, W), C = 3 (RGB) or 1 (gray), uint8 in [0, 255] or float in [0, 1]
  mask:  (1, H, W), values in {0, 1}, or class indices 0..K-1 (any dtype; moved by nearest neighbour only)
Geometric transforms move image and mask together; colour transforms touch the image only.
Each transform returns the image in the dtype it was given (uint8 stays uint8), except ToFloat and
Normalize, which return float. Random transforms take an optional `generator` (torch.Generator) when they
are built and draw only from it, so re-seeding that generator reproduces an epoch exactly.
"""
import ctypes
import math

import torch
import torch.nn.functional as F
from PIL import Image

# The mean and std of ImageNet's RGB channels: the input statistics the pretrained ResNet-34 encoder expects
# (torchvision.models.ResNet34_Weights.IMAGENET1K_V1 was trained on images normalised with them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pil_to_tensor(img, mode="RGB"):
    """A PIL image as a uint8 tensor (C, H, W): mode "RGB" gives 3 channels, "L" gives 1.

    Grayscale, palette, CMYK and RGBA images are converted to `mode` (RGBA's alpha channel is dropped).
    """
    if img.mode != mode:
        img = img.convert(mode)
    w, h = img.size
    channels = len(mode)
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)  # (H * W * C,)
    return data.view(h, w, channels).permute(2, 0, 1).contiguous()  # (C, H, W)


def tensor_to_pil(image):
    """A uint8 tensor (C, H, W) as a PIL image: mode "L" for 1 channel, "RGB" for 3 (pil_to_tensor's inverse)."""
    assert image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] in (1, 3), "uint8 (1|3, H, W)"
    c, h, w = image.shape
    pixels = image.permute(1, 2, 0).contiguous().cpu()  # (H, W, C), the byte order PIL expects
    data = ctypes.string_at(pixels.data_ptr(), pixels.numel())  # the tensor's memory as bytes, in one copy
    return Image.frombytes("L" if c == 1 else "RGB", (w, h), data)


def to_float(image):
    """The image as float in [0, 1]: uint8 is divided by 255, float passes through."""
    if image.dtype == torch.uint8:
        return image.float() / 255
    return image.float()


def like(image, reference):
    """The float image `image` (values in [0, 1]) back in the dtype of `reference`."""
    if reference.dtype == torch.uint8:
        return (image * 255).round().clamp(0, 255).to(torch.uint8)
    return image.clamp(0, 1)


def coin(p, generator):
    """True with probability p, drawn from `generator`."""
    return torch.rand((), generator=generator).item() < p


def uniform(low, high, generator):
    """A float drawn uniformly from [low, high] with `generator`."""
    return low + (high - low) * torch.rand((), generator=generator).item()


class Compose:
    """Apply transforms one after the other, to image and mask together."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, mask):
        for t in self.transforms:
            image, mask = t(image, mask)
        return image, mask

    def __repr__(self):
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class ToFloat:
    """Image to float in [0, 1]; the mask is untouched."""

    def __call__(self, image, mask):
        return to_float(image), mask

    def __repr__(self):
        return "ToFloat()"


def height_width(size):
    """(H, W) of an image size given as one side of a square (128) or as (H, W): the one reading of a size."""
    return (size, size) if isinstance(size, int) else tuple(size)


class Resize:
    """Resize to `size` (an int for a square, or (height, width)): the image bilinearly with antialiasing, the
    mask by nearest neighbour, so it stays in {0, 1} (class indices are never interpolated)."""

    def __init__(self, size):
        self.size = height_width(size)

    def __call__(self, image, mask):
        x = to_float(image)[None]  # (1, 3, H, W)
        x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        m = F.interpolate(mask[None].float(), size=self.size, mode="nearest-exact")  # (1, 1, h, w)
        return like(x[0], image), m[0].to(mask.dtype)

    def __repr__(self):
        return f"Resize({self.size})"


class RandomHorizontalFlip:
    """Mirror image and mask left-right with probability p."""

    def __init__(self, p=0.5, generator=None):
        self.p, self.generator = p, generator

    def __call__(self, image, mask):
        if coin(self.p, self.generator):
            return image.flip(-1), mask.flip(-1)
        return image, mask

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip:
    """Mirror image and mask top-bottom with probability p."""

    def __init__(self, p=0.5, generator=None):
        self.p, self.generator = p, generator

    def __call__(self, image, mask):
        if coin(self.p, self.generator):
            return image.flip(-2), mask.flip(-2)
        return image, mask

    def __repr__(self):
        return f"RandomVerticalFlip(p={self.p})"


class RandomRotation:
    """Rotate image and mask by the same angle, drawn uniformly from [-degrees, degrees].

    `degrees` may also be a pair (low, high). Positive angles turn the picture counter-clockwise.
    The image is sampled bilinearly, the mask by nearest neighbour (so it stays strictly in {0, 1}).
    The corners that rotate in are filled by reflecting the picture at its border, in the image and in the
    mask alike, so they show skin (or mirrored lesion with its mirrored mask), never black or garbage.
    """

    def __init__(self, degrees=30, generator=None):
        self.degrees = (-degrees, degrees) if isinstance(degrees, (int, float)) else tuple(degrees)
        self.generator = generator

    def __call__(self, image, mask):
        angle = math.radians(uniform(*self.degrees, self.generator))
        _, h, w = image.shape
        cos, sin = math.cos(angle), math.sin(angle)
        # For each output pixel, where to read in the input, in grid_sample's [-1, 1] coordinates.
        # The h/w and w/h factors keep the rotation rigid on non-square images.
        theta = torch.tensor([[cos, -sin * h / w, 0.0],
                              [sin * w / h, cos, 0.0]])  # (2, 3)
        return warp(image, mask, theta)

    def __repr__(self):
        return f"RandomRotation(degrees={self.degrees})"


class RandomScaleShift:
    """Zoom image and mask together by a random factor, then shift them by a random offset, in one warp.

    The zoom factor is drawn from [1 - scale, 1 + scale] (above 1 enlarges the picture about its centre);
    the shift from [-shift, shift] times the width (x) and, drawn separately, times the height (y); positive
    shifts move the picture right and down. Either may also be a pair (low, high): of zoom factors for
    `scale`, of fractions of the width and height for `shift`. Sampling and border filling are those of
    RandomRotation: bilinear image, nearest-neighbour mask (strictly in {0, 1}), reflection at the border.
    """

    def __init__(self, scale=0.2, shift=0.1, generator=None):
        self.scale = (1 - scale, 1 + scale) if isinstance(scale, (int, float)) else tuple(scale)
        self.shift = (-shift, shift) if isinstance(shift, (int, float)) else tuple(shift)
        self.generator = generator

    def __call__(self, image, mask):
        zoom = uniform(*self.scale, self.generator)
        dx = uniform(*self.shift, self.generator)  # fractions of the width and the height
        dy = uniform(*self.shift, self.generator)
        # An output point p reads the input at (p - t) / zoom, t the shift in grid_sample's [-1, 1]
        # coordinates, where the full width (or height) spans 2: so t = 2 * (dx, dy).
        theta = torch.tensor([[1 / zoom, 0.0, -2 * dx / zoom],
                              [0.0, 1 / zoom, -2 * dy / zoom]])  # (2, 3)
        return warp(image, mask, theta)

    def __repr__(self):
        return f"RandomScaleShift(scale={self.scale}, shift={self.shift})"


def warp(image, mask, theta):
    """Image (3, H, W) and mask (1, H, W) resampled through the affine map theta (2, 3), in grid_sample's
    [-1, 1] coordinates: output point p reads the input at theta @ (p, 1). The image is sampled bilinearly,
    the mask by nearest neighbour; both are reflected at the border. Dtypes are kept."""
    _, h, w = image.shape
    grid = F.affine_grid(theta[None], (1, 1, h, w), align_corners=False)  # (1, H, W, 2)
    x = F.grid_sample(to_float(image)[None], grid, mode="bilinear",
                      padding_mode="reflection", align_corners=False)  # (1, 3, H, W)
    m = F.grid_sample(mask[None].float(), grid, mode="nearest",
                      padding_mode="reflection", align_corners=False)  # (1, 1, H, W)
    return like(x[0], image), m[0].to(mask.dtype)


class ColorJitter:
    """Random brightness, contrast and saturation changes of the image; the mask is untouched.

    Each factor is drawn uniformly from [max(0, 1 - amount), 1 + amount]; an amount of 0 leaves that
    property alone (and draws nothing). They are applied in the order brightness, contrast, saturation.
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, generator=None):
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.generator = generator

    def factor(self, amount):
        return uniform(max(0.0, 1 - amount), 1 + amount, self.generator)

    def __call__(self, image, mask):
        x = to_float(image)  # (C, H, W), C = 1 or 3
        if self.brightness > 0:
            x = (x * self.factor(self.brightness)).clamp(0, 1)
        if self.contrast > 0:
            mean = grayscale(x).mean()
            x = (mean + self.factor(self.contrast) * (x - mean)).clamp(0, 1)
        if self.saturation > 0:
            gray = grayscale(x)  # (1, H, W)
            x = (gray + self.factor(self.saturation) * (x - gray)).clamp(0, 1)
        return like(x, image), mask

    def __repr__(self):
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation})")


def grayscale(x):
    """Luma of float RGB images (..., 3, H, W) -> (..., 1, H, W), ITU-R 601 weights; a gray image (..., 1, H, W)
    is its own luma."""
    if x.shape[-3] == 1:
        return x
    return (0.299 * x[..., 0, :, :] + 0.587 * x[..., 1, :, :] + 0.114 * x[..., 2, :, :]).unsqueeze(-3)


def normalisation(channels):
    """(mean, std) of images of `channels` channels: ImageNet's per channel for RGB (what the pretrained encoder
    expects); for gray one of each, ImageNet's averaged over its channels (0.449, 0.226)."""
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (round(sum(IMAGENET_MEAN) / 3, 6),), (round(sum(IMAGENET_STD) / 3, 6),)


class Normalize:
    """Image to float, then (image - mean) / std per channel; the mask is untouched."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean = torch.tensor(mean).view(-1, 1, 1)  # (3, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)  # (3, 1, 1)

    def __call__(self, image, mask):
        return (to_float(image) - self.mean) / self.std, mask

    def undo(self, image):
        """A normalised image (..., 3, H, W) back to float in [0, 1]."""
        return (image.float() * self.std.to(image.device) + self.mean.to(image.device)).clamp(0, 1)

    def __repr__(self):
        # rounded: the float32 tensors would print 0.485 as 0.48500001430511475
        mean, std = (tuple(round(v, 6) for v in t.flatten().tolist()) for t in (self.mean, self.std))
        return f"Normalize(mean={mean}, std={std})"


FLIP_OF = {(-1,): RandomHorizontalFlip, (-2,): RandomVerticalFlip}  # the dims a flip reverses: W (left-right), H


def train_transforms(generator=None, degrees=30, jitter=0.2, scale=0.0, shift=0.0, mean=IMAGENET_MEAN,
                     std=IMAGENET_STD, flips=((-1,), (-2,))):
    """The training augmentation: rotation up to `degrees`, then (only when scale or shift is above 0) a zoom
    by up to `scale` and a shift by up to `shift` (RandomScaleShift), the `flips` (each with probability 0.5:
    left-right (-1,) and up-down (-2,) by default; left-right only for images that have an up, see
    minunet.data.modality), colour jitter (brightness, contrast and saturation by up to `jitter` each), then
    normalisation by mean and std (ImageNet's by default; `normalisation(channels)`).
    With scale = shift = 0 the pipeline, and every number it draws, is that of the version without them."""
    geometry = [RandomRotation(degrees, generator=generator)]
    if scale > 0 or shift > 0:
        geometry.append(RandomScaleShift(scale, shift, generator=generator))
    return Compose([
        ToFloat(),
        *geometry,
        *[FLIP_OF[tuple(dims)](0.5, generator=generator) for dims in flips],
        ColorJitter(jitter, jitter, jitter, generator=generator),
        Normalize(mean, std),
    ])


def eval_transforms(mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """The evaluation pipeline: normalisation only (ImageNet's by default)."""
    return Compose([Normalize(mean, std)])
