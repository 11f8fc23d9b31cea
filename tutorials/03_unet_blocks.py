# %% [markdown]
# # 03 · The U-Net, block by block
#
# A classifier turns an image into one label; a segmentation network must return a label *for every
# pixel*, so its output has the input's height and width. The U-Net (Ronneberger et al., 2015) does it in
# two halves. The **encoder** (the left side of the "U") repeatedly halves the height and width while
# doubling the channels: each level sees a wider part of the image and describes it with more features,
# learning *what* is there. The **decoder** (the right side) doubles the height and width back, step by
# step, to say *where*. Between the two, **skip connections** hand each decoder level the encoder's
# features of the same size, so fine detail (the exact border of a lesion) is not lost at the bottom.
#
# minunet builds it from four small blocks (`minunet.DoubleConv`, `Down`, `Up`, `OutConv`). This tutorial
# runs a tensor through each block on its own, then through every block of a `minunet.UNet`, and
# **prints** the shape after each one with the block's parameter count. It also shows how an odd input
# size is handled, and **draws** one feature map of each level of the U (`out/03_feature_maps.png`).
#
# Run with no arguments (synthetic lesion), `--data-root DIR` (an ISIC 2016 image), or `--quick` (smaller).

# %%
import argparse
import os
import sys

import torch

from minunet import DoubleConv, Down, OutConv, UNet, Up
from minunet.data import make_dataset

parser = argparse.ArgumentParser(description="Tutorial 03: the U-Net blocks")
parser.add_argument("--data-root", metavar="DIR",
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="a smaller input: a smoke run in seconds")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128
torch.manual_seed(0)


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


def n_params(module):
    """The number of learned numbers (weights and biases) in a module."""
    return sum(p.numel() for p in module.parameters())


def shape(t):
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


# %% [markdown]
# ## The four blocks
#
# Shapes are written (B, C, H, W): batch, channels, height, width.
#
# - `DoubleConv(c_in, c_out)`: twice (3x3 convolution, BatchNorm, ReLU). A 3x3 convolution with padding 1
#   keeps H and W; it mixes each pixel with its eight neighbours and changes the channel count. BatchNorm
#   rescales each channel to a steady range, which makes training faster and less fragile; ReLU is the
#   non-linearity, max(x, 0).
# - `Down(c_in, c_out)`: a 2x2 max-pool (keep the largest of each 2x2 square: H and W halve), then
#   DoubleConv.
# - `Up(c_in, c_out)`: a 2x2 *transposed* convolution doubles H and W (and halves the channels), the skip
#   connection's features are concatenated along the channels, then DoubleConv.
# - `OutConv(c_in, classes)`: a 1x1 convolution, per pixel from features to one score (a *logit*) per
#   class. One class here: lesion. sigmoid(logit) is the probability that the pixel is lesion.

# %%
x = torch.randn(2, 16, 40, 40)  # a batch of 2 feature maps with 16 channels, 40 x 40
print(f"input                      {shape(x)}")
print(f"DoubleConv(16, 32)         {shape(DoubleConv(16, 32)(x))}   same H, W; new channel count")
print(f"Down(16, 32)               {shape(Down(16, 32)(x))}   H, W halved")
low, skip = torch.randn(2, 64, 20, 20), torch.randn(2, 32, 40, 40)
print(f"Up(64, 32)(low, skip)      {shape(Up(64, 32)(low, skip))}   from low {shape(low)} and skip {shape(skip)}")
print(f"OutConv(16, 1)             {shape(OutConv(16, 1)(x))}    one logit per pixel")

# %% [markdown]
# ## A whole U-Net, block by block
#
# `UNet(base_channels=c)` has widths c, 2c, 4c, 8c, 16c from the top level to the bottom. The classic
# network uses c = 64 (31 million parameters); c = 32 trains about four times faster and reached a
# validation Dice of 0.92 on ISIC at 128 px (tutorial 06). Here a lesion image goes through each of the model's blocks in turn, exactly as
# `UNet.forward` calls them; the skips (`x1` ... `x4`) are kept for the way up.

# %%
dataset = make_dataset(DATA, "val", root=args.data_root, size=SIZE, limit=1)
image = dataset[0][0][None]  # (1, 3, S, S): a batch of one
model = UNet(base_channels=64).eval()  # eval: BatchNorm uses its running statistics; no training here
rows = []
with torch.no_grad():
    x1 = model.inc(image)
    rows.append(("inc    DoubleConv", image, x1, model.inc))
    x2 = model.down1(x1)
    rows.append(("down1  Down", x1, x2, model.down1))
    x3 = model.down2(x2)
    rows.append(("down2  Down", x2, x3, model.down2))
    x4 = model.down3(x3)
    rows.append(("down3  Down", x3, x4, model.down3))
    x5 = model.down4(x4)  # the bottom of the U: 1/16 of the height and width
    rows.append(("down4  Down", x4, x5, model.down4))
    y = model.up1(x5, x4)  # skip x4
    rows.append(("up1    Up (+x4)", x5, y, model.up1))
    y2 = model.up2(y, x3)  # skip x3
    rows.append(("up2    Up (+x3)", y, y2, model.up2))
    y3 = model.up3(y2, x2)  # skip x2
    rows.append(("up3    Up (+x2)", y2, y3, model.up3))
    y4 = model.up4(y3, x1)  # skip x1
    rows.append(("up4    Up (+x1)", y3, y4, model.up4))
    logits = model.outc(y4)
    rows.append(("outc   OutConv", y4, logits, model.outc))
print(f"{'block':20s} {'input':>20s} -> {'output':20s} {'parameters':>12s}")
for name, inp, outp, block in rows:
    print(f"{name:20s} {shape(inp):>20s} -> {shape(outp):20s} {n_params(block):12,d}")
print(f"{'total':20s} {'':>20s}    {'':20s} {n_params(model):12,d}")
assert torch.allclose(logits, model(image), atol=1e-5), "the blocks by hand must equal model(image)"
print("the blocks called by hand give the same logits as model(image)")

# %% [markdown]
# Most of the parameters sit at the bottom of the U, where the channels are widest; most of the
# *computation* sits at the top, where the maps are largest. Halving `base_channels` divides the
# parameters (and the work) by about four:

# %%
for c in (8, 16, 32, 64):
    print(f"UNet(base_channels={c:2d}): {n_params(UNet(base_channels=c)):>11,d} parameters")

# %% [markdown]
# ## Odd sizes
#
# A 2x2 max-pool of an odd size rounds down (75 -> 37), so on the way up 2 x 37 = 74 falls one pixel short
# of the skip's 75. `Up` pads the up-sampled map by the difference before concatenating, so any height
# and width of at least 32 works, not only multiples of 16, and the output always matches the input.

# %%
odd = torch.randn(1, 3, 100, 75)
with torch.no_grad():
    print(f"UNet(base_channels=8) on {shape(odd)} -> {shape(UNet(base_channels=8).eval()(odd))}")

# %% [markdown]
# ## What each level sees
#
# One channel of the feature map at each level (the channel that varies most), for this untrained,
# randomly initialised network. Even untrained, the maps show the idea: the top levels are sharp and
# detailed, the bottom is coarse, 1/16 of the input's size, and the decoder brings the resolution back.

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

from minunet.plots import to_display  # noqa: E402

maps = [("input", None), ("x1 (inc)", x1), ("x2 (down1)", x2), ("x3 (down2)", x3), ("x4 (down3)", x4),
        ("x5 (down4)", x5), ("up1", y), ("up2", y2), ("up3", y3), ("up4", y4), ("logits", logits)]
fig, axes = plt.subplots(1, len(maps), figsize=(1.6 * len(maps), 2.2))
for ax, (name, fmap) in zip(axes, maps):
    if fmap is None:
        ax.imshow(to_display(image[0]).tolist())
    else:
        channel = fmap[0].flatten(1).var(dim=1).argmax()  # the most varied channel
        ax.imshow(fmap[0, channel].tolist(), cmap="viridis")
        name += f"\n{fmap.shape[2]}x{fmap.shape[3]}"
    ax.set_title(name, fontsize=7)
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "03_feature_maps.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "03_feature_maps.png"))

# %% [markdown]
# Next, tutorial 04: a second encoder, ResNet-34, built by hand and loaded with torchvision's weights.
