# %% [markdown]
# # 01 · The data: skin-lesion photographs and their masks
#
# *Segmentation* means labelling every pixel of an image. Here there are two labels: lesion (a mole, a
# melanoma, ...) and skin. The ISIC 2016 challenge (Part 1) gives dermoscopic photographs, each with a
# *mask* drawn by a dermatologist: an image of the same size whose pixels are 1 on the lesion and 0
# elsewhere. A segmentation model learns to draw that mask from the photograph.
#
# This tutorial loads the data with `minunet.data.make_dataset` and **prints** what one item is (shapes,
# types, value ranges), how many images each split holds, and how large the lesions are; it **draws** a
# grid of images with their mask outlines (`out/01_grid.png`) and a histogram of lesion sizes
# (`out/01_lesion_sizes.png`).
#
# Run it with no arguments for synthetic lesions (generated on the spot, offline), with
# `--data-root ../shared/data/isic2016` (the challenge's folders, or a folder of medsegbench's npz files)
# for the real images, and with `--quick` for a smoke run of a few seconds. In a notebook, where there are
# no flags, set the environment variable `MINUNET_DATA_ROOT` to the data folder instead. It ends with
# exercises; their answers are in `tutorials/answers/01_data.md`.

# %%
import argparse
import os
import sys

import torch

from minunet.data import DataError, make_dataset, synthetic_lesion

parser = argparse.ArgumentParser(description="Tutorial 01: the data")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="small images and few of them: a smoke run in seconds")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128  # every image is resized to SIZE x SIZE once, when the dataset is built
LIMIT = 24 if args.quick else None  # at most this many images per split
print(f"data: {DATA}, {SIZE} x {SIZE} px" + (f", at most {LIMIT} images per split (--quick)" if LIMIT else ""))


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


# %% [markdown]
# ## The splits
#
# A model is trained on one set of images (**train**), tuned and checked on a second it never learns
# from (**val**, for validation: it picks the best epoch), and scored once, at the very end, on a third
# (**test**). Scoring on images the model has seen would measure memory, not skill.
#
# `make_dataset(name, split, root, size)` returns a PyTorch `Dataset` for one split. For the challenge's
# folders, train and val are a fixed 90/10 split of the training folder (the same on every machine);
# test comes from the challenge's test folders when they are present. Synthetic lesions have fixed splits
# of 200 / 50 / 50 images, the same on every call.

# %%
splits = {}
for split in ("train", "val", "test"):
    try:
        splits[split] = make_dataset(DATA, split, root=args.data_root, size=SIZE, limit=LIMIT)
    except DataError as err:  # e.g. the challenge's test folders are not there
        print(f"{split:5s}: not available: {err}")
        continue
    print(f"{split:5s}: {len(splits[split])} images" + (f" (at most {LIMIT} with --quick)" if LIMIT else ""))
train = splits["train"]

# %% [markdown]
# ## One item
#
# Each item is a triple `(image, mask, id)`. The image is a float tensor of shape (3, H, W): three colour
# channels (red, green, blue), PyTorch's channels-first layout. Its values are *normalised*: each channel
# had the ImageNet mean subtracted and was divided by the ImageNet standard deviation, the input
# statistics that pretrained networks expect, so they lie roughly in [-2, 2.6], not in [0, 1].
# The mask has one channel, (1, H, W), and only two values, 0.0 and 1.0.

# %%
image, mask, image_id = train[0]
print(f"id    {image_id}")
print(f"image {tuple(image.shape)} {image.dtype}, values in [{image.min():.2f}, {image.max():.2f}]")
print(f"mask  {tuple(mask.shape)} {mask.dtype}, values {torch.unique(mask).tolist()}")
print(f"this mask covers {mask.mean():.1%} of its image")

# %% [markdown]
# Behind the items, the dataset keeps every image and mask in memory as small integers (`uint8`, one byte a
# value), already resized; an item only normalises (and, for training, augments: tutorial 02) its image.
# So an epoch decodes no file. The cell below prints what the training split takes in memory: tens of
# megabytes for ISIC's 674 images at 128 px, a quarter of what the same numbers would take as float32.

# %%
print(f"train.images {tuple(train.images.shape)} {train.images.dtype}, "
      f"train.masks {tuple(train.masks.shape)} {train.masks.dtype}: "
      f"{(train.images.numel() + train.masks.numel()) / 2**20:.1f} MiB")
print(f"ground truth at its own resolution, first 3 images: "
      f"{[tuple(train.original_mask(i).shape) for i in range(3)]}")

# %% [markdown]
# The synthetic lesions come from `synthetic_lesion`: skin-toned background, one irregular brown lesion,
# and a few dark hairs that are *not* part of the mask, as in real dermoscopy. They are easy compared
# with real lesions, which is why they suit a quick, offline first run.

# %%
g = torch.Generator().manual_seed(0)
lesion_image, lesion_mask = synthetic_lesion(SIZE, g)
print(f"synthetic_lesion: image {tuple(lesion_image.shape)} {lesion_image.dtype}, "
      f"mask {tuple(lesion_mask.shape)} {lesion_mask.dtype}")

# %% [markdown]
# ## How large are the lesions?
#
# For each training mask, the fraction of its pixels that is lesion, and whether the lesion reaches the
# border of the picture. Both shape what a model must do: the wider the range of sizes, the more scales it
# must work at; and a lesion that runs off the edge has no closed outline for the model to rely on. The
# lines printed below say what *this* data shows. The synthetic lesions are drawn around the middle of
# the picture, so only the largest reach its border; run the tutorial with `--data-root` to see the
# ISIC photographs' sizes and borders, and compare.
#
# The fraction also tells how *unbalanced* the two classes are. A "model" that answers skin everywhere is
# right on every skin pixel, so its pixel accuracy equals the mean skin fraction (printed last), while it
# finds no lesion at all. That is why segmentation is scored by overlap (Dice, Jaccard: tutorial 05), not
# by accuracy.

# %%
masks = train.masks.float()  # (N, 1, S, S) in {0, 1}
fraction = masks.mean(dim=(1, 2, 3))  # (N,) lesion fraction of each image
q = torch.quantile(fraction, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])).tolist()
print(f"lesion fraction over {len(fraction)} training images: min {q[0]:.1%}, quartiles {q[1]:.1%} / "
      f"{q[2]:.1%} / {q[3]:.1%}, max {q[4]:.1%}, mean {fraction.mean():.1%}")
print(f"the largest lesion is {q[4] / q[0]:.0f} times as large as the smallest (every image has {SIZE} x {SIZE} px)")
edges = torch.stack([masks[:, 0, 0, :], masks[:, 0, -1, :], masks[:, 0, :, 0], masks[:, 0, :, -1]], dim=1)
touching = edges.flatten(1).amax(dim=1)  # (N,) 1 where the lesion reaches the border
n_touching = int(touching.sum())
print(f"{n_touching} of the {len(touching)} lesions ({touching.mean():.0%}) touch the image border: "
      + ("every outline here is closed, inside the picture" if n_touching == 0 else
         f"for {'that one' if n_touching == 1 else 'those'} the photograph shows no closed outline"))
if n_touching:
    print(f"the lesions that touch the border cover {fraction[touching.bool()].mean():.1%} of their image on "
          f"average, the others {fraction[~touching.bool()].mean():.1%}")
print(f"pixel accuracy of answering 'skin' everywhere: {1 - fraction.mean():.1%} (and it finds no lesion)")

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.hist(fraction.tolist(), bins=20, range=(0, 1), color="tab:brown")
ax.set(xlabel="fraction of the image that is lesion", ylabel="images", title=f"lesion sizes ({DATA}, train)")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "01_lesion_sizes.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "01_lesion_sizes.png"))

# %% [markdown]
# ## A grid of images and masks
#
# Each image with its mask's outline drawn in green. The outline is the set of mask pixels that have a
# background pixel next to them: a 3x3 min-filter (a max-pool of the negated mask) erodes the mask by one
# pixel, and the outline is what the erosion removed.

# %%
from minunet.plots import to_display  # noqa: E402  (undoes the normalisation, for display)

n = min(8, len(train))
fig, axes = plt.subplots(2, n // 2, figsize=(2.2 * (n // 2), 4.6), squeeze=False)
for i, ax in enumerate(axes.flat[:n]):
    image, mask, image_id = train[i]
    eroded = -torch.nn.functional.max_pool2d(-mask[None], 3, stride=1, padding=1)[0]  # (1, S, S)
    outline = (mask - eroded)[0].bool()  # (S, S)
    picture = to_display(image)  # (S, S, 3) in [0, 1]
    picture[outline] = torch.tensor([0.0, 1.0, 0.0])
    ax.imshow(picture.tolist())
    ax.set_title(f"{image_id}\nlesion {mask.mean():.0%}", fontsize=8)
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "01_grid.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "01_grid.png"))

# %% [markdown]
# ## Exercises
#
# Answers: `tutorials/answers/01_data.md`; the notebook runs them after its last cell. All three run in full
# mode, as the notebook does: without `--quick`, on the ISIC 2016 images
# (`--data-root ../shared/data/isic2016`), so that your numbers can be checked against the answers.
#
# 1. **Pooled or averaged.** *Full mode.* The mean lesion fraction printed above is a mean of per-image
#    fractions. Compute instead the share of lesion pixels among all training pixels pooled together
#    (`masks.mean()`). How do the two compare, and why? When would they differ?
# 2. **Which border?** *Full mode.* Change the `touching` line to count, for each of the four sides (top,
#    bottom, left, right), how many lesions reach it (`edges.amax(dim=2).sum(dim=0)`). Which sides are
#    touched?
# 3. **An outline with four neighbours.** *Full mode.* The outline above counts a lesion pixel as border when
#    any of its *eight* neighbours is skin (a 3x3 min-filter). Draw the outline of `train[0]` with only its
#    *four* direct neighbours (up, down, left, right): the minimum of a 3x1 and a 1x3 min-filter. Which
#    outline has more pixels, and how many each?
#
# Next, tutorial 02: the augmentations that turn these few hundred images into endless variations, and
# why a mask must be resized differently from its image.
