# %% [markdown]
# # 03b · The whole U-Net: block by block, drawn, without its skips, and beside the 2015 paper
#
# Tutorial 03 built the four blocks; here they make a `minunet.UNet`. This tutorial **prints** a lesion
# image's shapes and each block's parameters through the U-Net, and the parameters at four widths; **draws**
# the U-Net from the model itself, by forward hooks (`out/03b_unet_diagram.png`); sets it beside the 2015
# paper's U-Net, whose sizes (572 in, 388 out) it **computes**; and **trains** a small U-Net twice, with and
# without its skip connections, printing their Dice and drawing their borders (`out/03b_skip_connections.png`).
# What each level of the two networks sees is exercise 4.
#
# With no flag: synthetic lesions; `--data-root DIR`: an ISIC 2016 image for the shapes (in a notebook,
# `MINUNET_DATA_ROOT`; the training always uses synthetic lesions); `--quick`: a smaller image for the shapes,
# 4 epochs, not 10; `--epochs N`.

# %%
import argparse
import inspect
import os
import sys
import time

import matplotlib
import torch
import torch.nn.functional as F

from minunet import UNet
from minunet.data import make_dataset
from minunet.losses import BCEDiceLoss
from minunet.metrics import isic_metrics
from minunet.plots import plot_blocks, record_blocks, to_display

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

parser = argparse.ArgumentParser(description="Tutorial 03b: the whole U-Net")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="a smaller input and short runs: a smoke run in seconds")
parser.add_argument("--epochs", type=int, help="epochs of each skip-connection run (default 10, 4 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128
TRAIN_SIZE = 64  # the skip-connection runs' image size (at 48 px, 3 epochs left the U-Net without skips below 0.75)
EPOCHS = args.epochs or (4 if args.quick else 10)  # quick: at 3, without skips 0.754 on an AVX2 CPU
# One CPU thread: for networks this tiny a second thread gains little, and on a busy machine it costs many
# times over (per training step: 0.15 s on two idle threads, 0.16 s on one, 1.5 to 2.8 s on two busy shared
# cores; bench/RESULTS.md, "Tutorials")
torch.set_num_threads(1)
torch.manual_seed(0)
print(f"data: {DATA} for the shapes ({SIZE} x {SIZE} px); synthetic lesions at {TRAIN_SIZE} px, {EPOCHS} "
      f"epochs, for the skip connections")


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
# ## A whole U-Net, block by block
#
# `UNet(base_channels=c)` has widths c, 2c, 4c, 8c, 16c from the top level to the bottom. The classic
# network uses c = 64. Narrower ones are much cheaper, and on ISIC no worse: on a 2-core CPU one epoch at
# 128 px trained 14.9 images/s at c = 32 against 4.6 at c = 64 (3.2 times as fast), and c = 16,
# `minunet train`'s default, reached the same held-out Dice as c = 32 over 749 cross-validated images
# (0.9017 against 0.9016): both measured in bench/RESULTS.md, with their commands.
#
# Below, printed from the library itself: the classic network's `forward`, where the encoder's outputs `x1` ...
# `x4` are kept for the way up and each `Up` block takes one of them (the skips); and
# `minunet.plots.record_blocks`, which shows what goes in and out of each block. It uses *forward hooks*
# (`module.register_forward_hook`): functions PyTorch calls each time a module has run, with its inputs and
# output. One on each block, one run, and it returns what each block took and gave, in order.

# %%
print(inspect.getsource(UNet.forward))
print(inspect.getsource(record_blocks))

# %% [markdown]
# A lesion image through the classic network (c = 64), block by block, with each block's parameters:

# %%
dataset = make_dataset(DATA, "val", root=args.data_root, size=SIZE, limit=1)
image = dataset[0][0][None]  # (1, 3, S, S): a batch of one
model = UNet(base_channels=64).eval()  # eval: BatchNorm uses its running statistics; no training here
blocks = dict(model.named_children())
print(f"{'block':17s} {'input(s)':>35s} -> {'output':17s} {'parameters':>11s}")
for name, kind, inputs, output in record_blocks(model, image):
    taken = " + ".join(shape(t) for t in inputs)  # Up blocks take two: the map from below, and the skip
    print(f"{name:6s}{kind:11s} {taken:>35s} -> {shape(output):17s} {n_params(blocks[name]):11,d}")
print(f"{'total':17s} {'':>35s}    {'':17s} {n_params(model):11,d}")

# %% [markdown]
# ## The U, drawn from the model
#
# `minunet.plots.plot_blocks` turns that record into a picture. Each block becomes a box, placed left to
# right in the order it ran and one row lower for each halving of the height, labelled with the shape it
# output. An arrow goes from the block that *made* a tensor to each block that *took* it: solid to the next
# block, dashed for a tensor taken from further back. Those are the skip connections, found in the model,
# not assumed; tutorial 04 draws the ResNet-34 U-Net with the same function.

# %%
calls, arrows = plot_blocks(model, image, os.path.join(OUT, "03b_unet_diagram.png"),
                            f"UNet(base_channels=64) on a {SIZE} x {SIZE} image: "
                            "each block's output, channels × height × width")
with torch.no_grad():
    assert torch.allclose(calls[-1][3], model(image), atol=1e-5)  # the last box holds the model's output
print("skip connections found:", ", ".join(f"{maker} -> {taker}" for maker, taker, skip in arrows if skip))
show(os.path.join(OUT, "03b_unet_diagram.png"))

# %% [markdown]
# Most of the parameters sit at the bottom of the U, where the channels are widest. The *work* does not: one
# level down has a quarter of the pixels and twice the channels, and a 3x3 convolution's work per pixel
# grows with its input channels times its output channels (four times), so every level costs about the
# same. Halving `base_channels` divides the parameters (and the work) by about four. And since `Up` pads an
# odd size back (tutorial 03), any height and width of at least 32 works:

# %%
for c in (8, 16, 32, 64):
    print(f"UNet(base_channels={c:2d}): {n_params(UNet(base_channels=c)):>11,d} parameters")
with torch.no_grad():
    odd = UNet(base_channels=8).eval()(torch.randn(1, 3, 100, 75))
print(f"UNet(base_channels=8) on (1, 3, 100, 75) -> {shape(odd)}")

# %% [markdown]
# ## How this U-Net differs from the 2015 paper
#
# `minunet.UNet` is the U-Net as most code writes it today, not as Ronneberger, Fischer and Brox published
# it ("U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015, arXiv:1505.04597,
# Section 2 and Figure 1). The widths (64 to 1024), the two 3x3 convolutions per level, the 2x2 max-pools,
# the concatenated skips and the 23 convolution layers (counted below) are the paper's. What differs:
#
# | | the 2015 paper | `minunet.UNet` |
# | --- | --- | --- |
# | 3x3 convolutions | unpadded: each loses a pixel on every side | padding 1: the size is kept |
# | output | smaller than the input (572 x 572 in, 388 x 388 out) | the input's height and width |
# | skips | the encoder's map *cropped* to the decoder's size | the whole map (padding an odd size back) |
# | after each convolution | ReLU | BatchNorm, then ReLU (convolutions without bias) |
# | up-sampling | up-sampling, then a 2x2 convolution | 2x2 transposed convolution, stride 2 |
# | output, loss | 2 channels, softmax, cross-entropy weighted between cells | 1 channel, sigmoid, BCE + Dice |
# | regularisation | dropout at the end of the encoder | none |
# | large images | overlap-tile: tiles, missing context mirrored | the whole image, resized |
#
# The paper's sizes follow from its unpadded convolutions. The function below runs a one-channel copy of
# its layers in PyTorch (weights do not matter for sizes) and records the size after each step:

# %%
def paper_unet_sizes(size):
    """The sizes after each step of a one-channel U-Net with the 2015 paper's layers (unpadded 3x3
    convolutions, 2x2 max-pools and up-convolutions, cropped skips) run on a size x size input, as
    [(step, size)]; None if a max-pool meets an odd size (the paper picks input sizes for which none does)."""
    def convs(x):  # two unpadded 3x3 convolutions with their ReLUs: 2 pixels fewer each
        return F.relu(F.conv2d(F.relu(F.conv2d(x, torch.ones(1, x.shape[1], 3, 3))), torch.ones(1, 1, 3, 3)))

    x, steps, skips = torch.ones(1, 1, size, size), [("input", size)], []
    for level in range(1, 5):
        x = convs(x)
        skips.append(x)
        if x.shape[-1] % 2:
            return None
        x = F.max_pool2d(x, 2)
        steps += [(f"encoder level {level}: two 3x3 convolutions", skips[-1].shape[-1]), ("max-pool", x.shape[-1])]
    x = convs(x)
    steps.append(("bottom: two 3x3 convolutions", x.shape[-1]))
    for skip in reversed(skips):
        x = F.conv_transpose2d(x, torch.ones(1, 1, 2, 2), stride=2)  # the up-convolution
        crop = (skip.shape[-1] - x.shape[-1]) // 2
        steps.append((f"up-convolution; the skip's {skip.shape[-1]} cropped by {crop} a side", x.shape[-1]))
        x = convs(torch.cat([skip[..., crop:crop + x.shape[-2], crop:crop + x.shape[-1]], x], dim=1))
        steps.append(("two 3x3 convolutions", x.shape[-1]))
    return steps


for step, size in paper_unet_sizes(572):
    print(f"{size:4d}  {step}")
layers = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules())
print(f"minunet.UNet: {layers} convolution layers; on 572 x 572 -> "
      f"{shape(UNet(base_channels=4).eval()(torch.zeros(1, 3, 572, 572)))}")

# %% [markdown]
# So the paper segments a large image tile by tile, each 388 x 388 output from the 572 x 572 input around it
# (mirrored past the image's edge); minunet's padded convolutions give the input's size in one pass, with
# borders computed partly from the padding's zeros. BatchNorm (Ioffe and Szegedy, arXiv:1502.03167) is not
# in the paper, which trained on one large tile per batch; `minunet train` trains on batches of 16 images.

# %% [markdown]
# ## What the skip connections buy
#
# At the bottom of the U a 64 x 64 image is a 4 x 4 grid of features: far too coarse to say where a border runs
# to the pixel. The skips hand the decoder the encoder's sharp maps at every level. To see what they are worth,
# the same small U-Net (width 8, on 64 x 64 synthetic lesions) is trained as `UNet` itself and as
# `UNetWithoutSkips`, whose `forward` hands each `Up` block **zeros** in place of the encoder's features. All
# else is the same: blocks and parameters (the skip channels' weights stay, and only ever see zeros), initial
# weights (one seed builds both), batches and their order, loss (BCE + Dice) and optimiser (Adam, 1e-3). The
# loop is written out (tutorial 06 explains each line), with no augmentation. One short run of each, with one
# seed: an illustration, not a measurement of what skips are worth in general.

# %%
class UNetWithoutSkips(UNet):
    """UNet whose Up blocks receive zeros instead of the encoder's features (the skip connections cut)."""

    def forward(self, x):  # (B, in, H, W)
        x1 = self.inc(x)  # (B, c, H, W)
        x2 = self.down1(x1)  # (B, 2c, H/2, W/2)
        x3 = self.down2(x2)  # (B, 4c, H/4, W/4)
        x4 = self.down3(x3)  # (B, 8c, H/8, W/8)
        x5 = self.down4(x4)  # (B, 16c, H/16, W/16)
        x = self.up1(x5, torch.zeros_like(x4))  # (B, 8c, H/8, W/8), from x5 alone
        x = self.up2(x, torch.zeros_like(x3))  # (B, 4c, H/4, W/4)
        x = self.up3(x, torch.zeros_like(x2))  # (B, 2c, H/2, W/2)
        x = self.up4(x, torch.zeros_like(x1))  # (B, c, H, W)
        return self.outc(x)  # (B, out, H, W) logits


def stacked(split, size):
    """A synthetic split as two tensors: images (N, 3, S, S) normalised, masks (N, 1, S, S) in {0, 1}."""
    items = make_dataset("synthetic", split, size=size)
    return torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items])


def train(model, images, masks, epochs, batch_size=16, lr=1e-3, seed=0):
    """Train model in place with Adam on BCE + Dice, the batches shuffled by seed; return the seconds."""
    loss_fn, optimizer = BCEDiceLoss(), torch.optim.Adam(model.parameters(), lr=lr)
    order_generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=order_generator)
        for first in range(0, len(images), batch_size):
            batch = order[first:first + batch_size]
            logits = model(images[batch])  # forward: (B, 1, S, S)
            loss = loss_fn(logits, masks[batch])
            optimizer.zero_grad()
            loss.backward()  # the gradient of the loss for every weight
            optimizer.step()  # move each weight a little against its gradient
    model.eval()
    return time.perf_counter() - start


train_images, train_masks = stacked("train", TRAIN_SIZE)  # (200, 3, T, T), (200, 1, T, T); T = TRAIN_SIZE
val_images, val_masks = stacked("val", TRAIN_SIZE)  # (50, 3, T, T), (50, 1, T, T)
runs = {}
for name, cls in [("with skips", UNet), ("without skips", UNetWithoutSkips)]:
    torch.manual_seed(0)  # the same initial weights for both
    net = cls(base_channels=8)
    seconds = train(net, train_images, train_masks, EPOCHS)
    with torch.no_grad():
        probs = torch.sigmoid(net(val_images))  # (50, 1, T, T)
    dice = isic_metrics(probs, val_masks)["dice"]  # (50,) one Dice per validation image
    runs[name] = (net, probs > 0.5, dice)
    print(f"{name:14s} {n_params(net):,d} parameters, {EPOCHS} epochs of {len(train_images)} images in "
          f"{seconds:.0f} s: validation Dice {dice.mean():.3f} (median {dice.median():.3f}, worst {dice.min():.3f})")
with_skips, without_skips = runs["with skips"][2], runs["without skips"][2]
gap = (with_skips - without_skips).mean().item()
print(f"in this run the skip connections were worth {gap:+.3f} mean Dice; the network without them scored "
      f"lower on {int((without_skips < with_skips).sum())} of the {len(with_skips)} validation images, higher "
      f"on {int((without_skips > with_skips).sum())}")

# %% [markdown]
# The predicted borders (red) over the true ones (green), for four validation images picked by lesion
# size (the smallest, two in between, the largest), not by how well either model did. The top row is the
# U-Net with skips, the bottom row the one without; each panel's title is that image's Dice. Look at how
# closely each red line follows its green one, and at the smallest lesion.

# %%
areas = val_masks.flatten(1).sum(dim=1)  # (50,) lesion pixels per image
by_size = areas.argsort()
picked = [int(by_size[round(q * (len(by_size) - 1))]) for q in (0, 1 / 3, 2 / 3, 1)]
fig, axes = plt.subplots(2, len(picked), figsize=(2.6 * len(picked), 5.6))
for r, (name, (net, pred, dice)) in enumerate(runs.items()):
    for c, i in enumerate(picked):
        ax = axes[r][c]
        ax.imshow(to_display(val_images[i]).tolist())
        for mask, colour in ((val_masks[i, 0], "lime"), (pred[i, 0].float(), "red")):
            if 0 < mask.sum() < mask.numel():  # a border exists only where the mask is neither empty nor full
                ax.contour(mask.tolist(), levels=[0.5], colors=colour, linewidths=1.2)
        ax.set_title(f"{name}\nDice {dice[i]:.2f}", fontsize=9)
        ax.set_axis_off()
fig.suptitle(f"true border (green) and predicted border (red), after {EPOCHS} epochs", fontsize=10)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "03b_skip_connections.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "03b_skip_connections.png"))

# %% [markdown]
# ## Exercises
#
# Answers: `tutorials/answers/03b_unet.md`; the notebook runs them after its last cell. Each exercise names
# its mode: *quick* is a `--quick` run (seconds), *full* the run without it, as the notebook's.
#
# 1. **Bilinear up-sampling.** *Quick mode.* Build `UNet(base_channels=64, bilinear=True)` and draw it with
#    `plot_blocks`. The `Up` blocks now up-sample by a fixed interpolation with no weights, so `DoubleConv`
#    halves the channels instead of the transposed convolution. How many parameters does it have, against the
#    31 million of the classic one, and what does the bottom block output?
# 2. **Tiles that fit.** *Quick mode.* The paper chooses input sizes for which every max-pool meets an even
#    size. With `paper_unet_sizes`, find every input size from 500 to 600 that fits, and the output size of
#    each.
# 3. **Which skip matters?** *Full mode.* In `UNetWithoutSkips.forward`, give back one skip at a time (`x1`
#    only, then `x4` only) and rerun the two trainings. Which skip restores the most Dice, and which the
#    sharpest borders?
# 4. **What each level sees.** *Quick mode.* Feed the second of the four pictured validation images through
#    both trained networks with `record_blocks`, and draw, for the input and each block, the channel of its
#    output that varies most over the image. Where does tutorial 03's 2x2 pattern of the transposed
#    convolution show, and why would it show more without skips?
#
# Next, tutorial 04: a second encoder, ResNet-34, built by hand and loaded with torchvision's weights.
