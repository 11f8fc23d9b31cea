"""Synthetic lesions: dermoscopy-like images drawn in torch, each with its exact mask, for tests and smoke runs
that need no downloaded data; also with a third class (a surgical-marker ink stroke) and in grayscale."""
import math

import torch
import torch.nn.functional as F

from ..transforms import Resize, grayscale

SYNTHETIC_SIZES = {"train": 200, "val": 50, "test": 50}
SYNTHETIC_SEEDS = {"train": 1, "val": 2, "test": 3}  # each split its own images
SYNTHETIC_CLASSES = {2: ("background", "lesion"), 3: ("background", "lesion", "ink")}  # by the classes asked for


def synthetic_split(split, size, limit=None, classes=2, channels=3):
    """SYNTHETIC_SIZES[split] synthetic lesions: images (N, C, H, W) uint8, masks (N, 1, H, W), ids.

    size: S for S x S, or (H, W): the lesions are drawn square at the longer side, then resized. Image i of a
    split is always the same: its generator is seeded by the split and i. classes: 2 (lesion masks in {0, 1})
    or 3 (class indices: 1 lesion, 2 an ink stroke drawn over it, `ink_mark`); the lesions are the same.
    channels: 3 (RGB) or 1 (the same images as gray, their luma).
    """
    n = SYNTHETIC_SIZES[split] if limit is None else min(limit, SYNTHETIC_SIZES[split])
    h, w = (size, size) if isinstance(size, int) else size
    resize = Resize((h, w))
    g = torch.Generator()
    images, masks = [], []
    for i in range(n):
        g.manual_seed(SYNTHETIC_SEEDS[split] * 1_000_000 + i)
        image, mask = synthetic_lesion(max(h, w), g)  # (3, S, S), (1, S, S)
        if classes == 3:
            image, mask = ink_mark(image, mask, g)
        if channels == 1:
            image = (grayscale(image.float() / 255) * 255).round().to(torch.uint8)  # (1, S, S)
        image, mask = resize(image, mask) if h != w else (image, mask)  # (3, H, W), (1, H, W)
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


def ink_mark(image, mask, generator):
    """The image with a straight violet marker stroke near its border, and the mask with the stroke as class 2
    over the lesion's 1: (3, S, S) uint8 and (1, S, S) uint8 in {0, 1, 2}. Straight and even, unlike a lesion,
    so that it can be told apart in gray too."""
    size = image.shape[-1]

    def rand(low, high):
        return low + (high - low) * torch.rand((), generator=generator).item()

    t = (torch.arange(size) + 0.5) / size * 2 - 1  # (S,) pixel centres in [-1, 1]
    y, x = torch.meshgrid(t, t, indexing="ij")  # (S, S) each
    phi, offset, half_width = rand(0, 2 * math.pi), rand(0.45, 0.8), rand(0.04, 0.08)
    across = x * math.cos(phi) + y * math.sin(phi) - offset  # (S, S): distance from the stroke's centre line
    opacity = rand(0.7, 0.95) * torch.sigmoid((half_width - across.abs()) / 0.01)  # (S, S), half at its edge
    ink = torch.tensor([0.35, 0.2, 0.55])[:, None, None]  # (3, 1, 1) violet
    x = image.float() / 255  # (3, S, S)
    x = x + opacity * (ink - x)
    stroke = across.abs() < half_width  # (S, S) bool
    mask = torch.where(stroke[None], torch.full_like(mask, 2), mask)  # (1, S, S)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8), mask
