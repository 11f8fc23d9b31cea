# %% [markdown]
# # 02 · Transforms: augmenting an image and its mask together
#
# A few hundred training images are not many. *Augmentation* shows the model a slightly different version
# of each image every epoch (turned, mirrored, brighter or paler), so it learns what a lesion looks like
# rather than memorising these particular photographs. In segmentation there is a catch: every geometric
# change made to the image must be made to its mask too, or the mask no longer outlines the lesion.
#
# minunet's transforms (`minunet.transforms`) are therefore called on both at once:
# `image, mask = t(image, mask)`. This tutorial applies each one to a single image and its mask and
# **draws** the results (`out/02_each_transform.png`), draws several random draws of the full training
# augmentation (`out/02_train_augmentation.png`), **prints** what the normalisation at its end does to an
# image's numbers, and **shows** why a mask cannot be resized bilinearly as it stands, and the two ways that
# keep it a mask: nearest-neighbour interpolation, or bilinear followed by a threshold at 0.5
# (`out/02_nearest_vs_bilinear.png`).
#
# Run with no arguments (synthetic lesions), `--data-root DIR` (ISIC 2016; in a notebook, the environment
# variable `MINUNET_DATA_ROOT`), or `--quick` (a few seconds). It ends with exercises; their answers are in
# `tutorials/answers/02_transforms.md`.

# %%
import argparse
import os
import sys

import torch
import torch.nn.functional as F

from minunet.data import make_dataset
from minunet.transforms import (IMAGENET_MEAN, IMAGENET_STD, ColorJitter, Compose, Normalize, RandomHorizontalFlip,
                                RandomRotation, RandomVerticalFlip, Resize, train_transforms)

parser = argparse.ArgumentParser(description="Tutorial 02: transforms")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="small images: a smoke run in seconds")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 96 if args.quick else 192
print(f"data: {DATA}, {SIZE} x {SIZE} px")


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


# %% [markdown]
# ## One image and its mask
#
# Transforms work on tensors: the image (3, H, W) as `uint8` (0 to 255) or float in [0, 1], the mask
# (1, H, W) with values 0 and 1. The dataset keeps exactly those, before normalisation, in `.images` and
# `.masks`; we take the first pair.

# %%
dataset = make_dataset(DATA, "train", root=args.data_root, size=SIZE, limit=1)
image, mask = dataset.images[0], dataset.masks[0]  # (3, S, S) uint8, (1, S, S) uint8
print(f"image {tuple(image.shape)} {image.dtype}, mask {tuple(mask.shape)} {mask.dtype} "
      f"values {torch.unique(mask).tolist()}")

# %% [markdown]
# ## Each transform on its own
#
# - `Resize(size)`: to a given size; the image bilinearly (smooth), the mask by nearest neighbour.
# - `RandomRotation(degrees)`: turns both by the same random angle. The corners that turn in are filled by
#   mirroring the picture at its border, in the image and the mask alike: no black triangles, but no new skin
#   either. Where the lesion comes near the border, its mirror image turns into the corner, so the mask can
#   hold a piece of lesion there (it matches the mirrored lesion in the image). And the mirror doubles what
#   lies along the border, so a lighter edge or a shadow there shows as a thin seam where the picture folds.
#   Look at the corners of the rotated pair below.
# - `RandomHorizontalFlip(p)`, `RandomVerticalFlip(p)`: mirror both, each with probability p (here 1, so
#   that the figure shows it). A lesion has no "up" and no "left": its mirror image is as plausible a
#   photograph as the original. The two flips together give four orientations (none, left-right,
#   top-bottom, and both, which is a turn by 180 degrees), each drawn a quarter of the time; the turns by 90
#   degrees are not among them (exercise 1 adds them), while the rotation adds any angle up to 30 degrees.
#   Not every image is like that. A chest X-ray has an up and a left: the heart on the patient's left, the
#   clavicles at the top, and an upside-down chest is an image no scanner makes. So minunet decides from the
#   data which way its images may turn (`minunet.data.modality`): dermoscopy, microscopy and fundus images
#   any way (the transforms here), X-ray, ultrasound, CT and MR slices, and a folder of gray images, upright:
#   left-right flips only and turns up to 15 degrees, and test-time augmentation averages only the flips the
#   training made. `minunet train` says so in a note when the data make it upright, the checkpoint records
#   it, and `--orientation` chooses another; tutorial 10 trains on chest X-rays that way.
# - `ColorJitter(brightness, contrast, saturation)`: changes the image's colours only; the mask is the
#   same, because the lesion is where it was. Cameras, lighting and skin tones differ between clinics.
#
# Random transforms draw their randomness from a `torch.Generator` given when they are built. Seeding that
# generator replays exactly the same draws: that is how a training run repeats to the last bit.

# %%
g = torch.Generator()
examples = [
    ("original", None),
    ("Resize(48)", Resize(48)),
    ("RandomRotation(30)", RandomRotation(30, generator=g)),
    ("RandomHorizontalFlip(p=1)", RandomHorizontalFlip(p=1.0, generator=g)),
    ("RandomVerticalFlip(p=1)", RandomVerticalFlip(p=1.0, generator=g)),
    ("ColorJitter(0.4, 0.4, 0.4)", ColorJitter(0.4, 0.4, 0.4, generator=g)),
]
results = []
for name, t in examples:
    g.manual_seed(3)
    out_image, out_mask = (image, mask) if t is None else t(image, mask)
    results.append((name, out_image, out_mask))
    print(f"{name:28s} image {tuple(out_image.shape)} {str(out_image.dtype):12s} "
          f"mask values {torch.unique(out_mask).tolist()}, lesion {out_mask.float().mean():.1%}")

g.manual_seed(3)
again = RandomRotation(30, generator=g)(image, mask)
print("same seed, same rotation:", torch.equal(again[0], results[2][1]) and torch.equal(again[1], results[2][2]))

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

from minunet.plots import to_display  # noqa: E402  (uint8 or normalised image -> (H, W, 3) in [0, 1])


def draw_pairs(pairs, path, title):
    """One column per (name, image, mask): the image on top, the mask below."""
    fig, axes = plt.subplots(2, len(pairs), figsize=(2.1 * len(pairs), 4.6), squeeze=False)
    for c, (name, img, msk) in enumerate(pairs):
        axes[0][c].imshow(to_display(img).tolist())  # (H, W, 3)
        axes[1][c].imshow(msk[0].tolist(), cmap="gray", vmin=0, vmax=1)
        axes[0][c].set_title(name, fontsize=7)
        for ax in axes[:, c]:
            ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    show(path)


draw_pairs(results, os.path.join(OUT, "02_each_transform.png"), "each transform: image (top) and mask (bottom)")

# %% [markdown]
# ## The training augmentation
#
# `train_transforms(generator)` chains them with `Compose`: to float, a rotation of up to 30 degrees, both
# flips with probability 1/2, colour jitter of up to 20%, then `Normalize` (subtract the ImageNet mean,
# divide by its standard deviation). The dataset applies it when built with `augment=True`; here it is
# called by hand, five times on the same pair. Every draw differs, and the mask always follows the image,
# mirrored corners included: a turned draw can show lesion pieces in the mask's corners and seams in the image.
# Validation and test images are only normalised (`eval_transforms()`): the score must not depend on luck.

# %%
pipeline = train_transforms(torch.Generator().manual_seed(0))
print(pipeline)
draws = []
for k in range(5):
    aug_image, aug_mask = pipeline(image, mask)  # normalised float image, mask in {0, 1}
    draws.append((f"draw {k + 1}", aug_image, aug_mask))  # to_display undoes the normalisation
draw_pairs(draws, os.path.join(OUT, "02_train_augmentation.png"), "train_transforms: five random draws")

# %% [markdown]
# ## What Normalize does to the numbers
#
# `Normalize` subtracts a *fixed* mean per channel and divides by a *fixed* standard deviation: ImageNet's,
# the mean and spread of the pixels of its photographs, not this image's. So a channel of a normalised
# image has mean 0 and standard deviation 1 only if its pixels are, in level and spread, like ImageNet's
# pixels, which a photograph of skin need not be: the network only needs its input on a steady scale, the
# same for every image, and pretrained weights (tutorial 04) expect ImageNet's. Below, the last draw's
# numbers before `Normalize` (in [0, 1]) and after, channel by channel: the mean after is (mean before -
# ImageNet's mean) / ImageNet's std, and the std after is the std before / ImageNet's std.

# %%
before = Normalize().undo(aug_image)  # (3, S, S) in [0, 1]: the draw before its normalisation
above, wider = [], []
for c, name in enumerate(("red", "green", "blue")):
    m, sd = before[c].mean().item(), before[c].std().item()
    m_after, sd_after = aug_image[c].mean().item(), aug_image[c].std().item()
    assert abs(m_after - (m - IMAGENET_MEAN[c]) / IMAGENET_STD[c]) < 1e-3
    assert abs(sd_after - sd / IMAGENET_STD[c]) < 1e-3
    print(f"{name:5s}: mean {m:.3f} -> ({m:.3f} - {IMAGENET_MEAN[c]}) / {IMAGENET_STD[c]} = {m_after:+.2f},   "
          f"std {sd:.3f} -> {sd:.3f} / {IMAGENET_STD[c]} = {sd_after:.2f}")
    above += [name] if m_after > 0 else []
    wider += [name] if sd_after > 1 else []
below = [c for c in ("red", "green", "blue") if c not in above]
print(f"this draw lies above ImageNet's mean in {', '.join(above) or 'no channel'}"
      + (f", below it in {', '.join(below)}" if below else "") + "; "
      + (f"its pixels spread more than ImageNet's in {', '.join(wider)}" if wider else
         "in every channel its pixels spread less than ImageNet's (std below 1)"))

# %% [markdown]
# ## Resizing a mask: nearest neighbour, or bilinear and a threshold
#
# Resizing computes each new pixel from the old pixels around it. *Bilinear* interpolation takes a
# weighted mean of the four nearest ones: right for a photograph (edges stay smooth), wrong for a mask *as
# it stands*. On the lesion's border it averages lesion (1) with skin (0) and invents values such as 0.25
# or 0.6, which are not labels (a loss given 0.6 as the truth trains towards "60 % lesion"). Two ways keep a
# mask a mask. *Nearest neighbour* copies the closest pixel, so only 0s and 1s come out; its borders are
# staircases of the coarse grid. *Bilinear, then a threshold at 0.5* (lesion where the mean is at least
# one half) also gives only 0s and 1s, with a smoother border; both are valid choices. `Resize` and
# `RandomRotation` use nearest neighbour for the mask.
#
# Below, the mask is shrunk to 1/4 of its size and brought back, the three ways, and each result is
# compared with the original mask.

# %%
m = mask[None].float()  # (1, 1, S, S)
small = SIZE // 4
bilinear = F.interpolate(F.interpolate(m, size=small, mode="bilinear", align_corners=False),
                         size=SIZE, mode="bilinear", align_corners=False)[0]  # (1, S, S)
nearest = F.interpolate(F.interpolate(m, size=small, mode="nearest-exact"), size=SIZE, mode="nearest-exact")[0]
thresholded = (bilinear >= 0.5).float()  # (1, S, S) in {0, 1}
_, resized_mask = Compose([Resize(small), Resize(SIZE)])(image, mask)
assert torch.equal(resized_mask.float(), nearest)  # minunet's Resize is the nearest-neighbour way
strays = ((bilinear > 0) & (bilinear < 1)).float().mean()
print(f"bilinear              {len(torch.unique(bilinear))} distinct values, {strays:.1%} of pixels neither 0 nor 1")
for name, result in (("nearest", nearest), ("bilinear, then >= 0.5", thresholded)):
    wrong = int((result != m[0]).sum())
    print(f"{name:21s} values {torch.unique(result).tolist()}, {wrong} pixels ({wrong / SIZE ** 2:.2%}) differ "
          f"from the original mask")

fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
for ax, (name, picture) in zip(axes, [("mask", m[0, 0]), ("bilinear: grey fringe", bilinear[0]),
                                      ("nearest: still 0 or 1", nearest[0]),
                                      ("bilinear, then >= 0.5: 0 or 1", thresholded[0])]):
    ax.imshow(picture.tolist(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(name, fontsize=9)
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "02_nearest_vs_bilinear.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "02_nearest_vs_bilinear.png"))

# %% [markdown]
# ## Exercises
#
# Answers: `tutorials/answers/02_transforms.md`; the notebook runs them after its last cell. All three run in
# full mode, as the notebook does: without `--quick`, on the ISIC 2016 images
# (`--data-root ../shared/data/isic2016`), so that your numbers can be checked against the answers.
#
# 1. **All eight.** *Full mode.* Write a transform `RandomTranspose(p, generator)` whose
#    `__call__(image, mask)` swaps the height and width of both (`.transpose(-1, -2)`) with probability p, and
#    add it after the two flips. Apply the two flips alone, then the flips and your transpose, 200 times each
#    to a small asymmetric pattern (`torch.arange(9).view(1, 3, 3)` as the image, and as the mask) and count
#    the distinct results.
# 2. **Which way is closer, and why?** *Full mode.* Above, one of the two masks that stay masks (nearest;
#    bilinear then threshold) differs from the original in fewer pixels. Shrink to 1/8 instead
#    (`small = SIZE // 8`): how many pixels differ each way now, and does the order change? Why is one of them
#    closer?
# 3. **Normalising with the data's own statistics.** *Full mode.* Compute the mean and standard deviation of
#    each channel over all the training images
#    (`make_dataset(DATA, "train", root=args.data_root, size=128).images`, as floats in [0, 1]), build
#    `Normalize(mean, std)` with them, and normalise the training images with it. What mean and std does each
#    channel have now, over the whole set, and over the first image alone?
#
# Next, tutorial 03: the U-Net, built from four small blocks, and the shape of a tensor through each.
