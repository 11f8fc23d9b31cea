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
#
# - **prints** a tensor's shape through each block, then through every block of a `minunet.UNet`, with
#   each block's parameter count, and how an odd input size is handled;
# - works the decoder's 2x2 **transposed convolution by hand** (each output pixel written out as the sum
#   of input pixel x kernel weight that lands on it), **prints** the grid and checks it equals
#   `torch.nn.ConvTranspose2d`;
# - **draws** the U-Net it builds, one box per block with the shape of the tensor it output, recorded from
#   the model itself by forward hooks (`out/03_unet_diagram.png`);
# - **trains** the same small U-Net twice, with and without its skip connections, and **draws** their
#   predicted borders over the true ones (`out/03_skip_connections.png`) and what each level of the two
#   networks sees (`out/03_feature_maps.png`), with their Dice.
#
# Run with no arguments (synthetic lesions), `--data-root DIR` (an ISIC 2016 image for the shapes; the
# skip-connection runs always train on synthetic lesions), or `--quick` (smaller images, and 3 training
# epochs instead of 10). `--epochs N` sets the length of the two training runs.

# %%
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn

from minunet import DoubleConv, Down, OutConv, UNet, Up
from minunet.data import make_dataset
from minunet.losses import BCEDiceLoss
from minunet.metrics import isic_metrics

parser = argparse.ArgumentParser(description="Tutorial 03: the U-Net blocks")
parser.add_argument("--data-root", metavar="DIR",
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="a smaller input and short runs: a smoke run in seconds")
parser.add_argument("--epochs", type=int, help="epochs of each skip-connection run (default 10, 3 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128
TRAIN_SIZE = 48 if args.quick else 64  # the skip-connection runs' image size
EPOCHS = args.epochs or (3 if args.quick else 10)
# One CPU thread: the networks trained here are tiny, and a second thread gains little (0.15 s per training
# step on two idle cores, 0.16 s on one), while on a busy machine threads waiting for each other's cores
# make these small operations many times slower (1.5 to 2.8 s per step measured on two shared cores).
torch.set_num_threads(1)
torch.manual_seed(0)

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from minunet.plots import to_display  # noqa: E402  (a normalised image tensor back to displayable colours)


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
# ## The transposed convolution, by hand
#
# A convolution slides a kernel over the input and *gathers* a weighted sum into each output pixel. A
# transposed convolution does the reverse: each input pixel *stamps* a copy of the kernel, scaled by its
# value, onto the output, `stride` pixels further along for each step in the input, and where stamps
# overlap they add. For input pixel (i, j) and kernel weight (a, b), the product x[i,j]·k[a,b] lands on
# output pixel (stride·i + a, stride·j + b). With a 2x2 kernel and stride 2, as in `Up`, the stamps tile
# the output exactly: every output pixel is the sum of exactly one product, and H and W double.

# %%
def stamps(h, w, k, stride):
    """For an (h, w) input and a (k, k) kernel: for every output pixel, the list of (i, j, a, b) whose
    product input[i][j] * kernel[a][b] lands on it."""
    rows, cols = (h - 1) * stride + k, (w - 1) * stride + k  # the output's height and width
    terms = [[[] for _ in range(cols)] for _ in range(rows)]
    for i in range(h):
        for j in range(w):
            for a in range(k):
                for b in range(k):
                    terms[stride * i + a][stride * j + b].append((i, j, a, b))
    return terms


def conv_transpose_by_hand(x, kernel, stride):
    """The transposed convolution of a list-of-rows input by a list-of-rows kernel, as lists of rows."""
    terms = stamps(len(x), len(x[0]), len(kernel), stride)
    return [[sum(x[i][j] * kernel[a][b] for i, j, a, b in cell) for cell in row] for row in terms]


x_small = [[1, 2],
           [3, 4]]
kernel = [[1, -1],
          [2, 3]]
terms = stamps(2, 2, 2, stride=2)
print("each output pixel of the 2x2 input, 2x2 kernel, stride 2 (xij·kab = x[i][j] * k[a][b]):")
for row in terms:
    print("  " + "  ".join(" + ".join(f"x{i}{j}·k{a}{b}" for i, j, a, b in cell) for cell in row))
by_hand = conv_transpose_by_hand(x_small, kernel, stride=2)
print("their values:")
for row in by_hand:
    print("  " + " ".join(f"{v:4d}" for v in row))

layer = nn.ConvTranspose2d(1, 1, kernel_size=2, stride=2, bias=False)  # weight: (C_in, C_out, 2, 2)
with torch.no_grad():
    layer.weight.copy_(torch.tensor(kernel, dtype=torch.float32)[None, None])
    torch_out = layer(torch.tensor(x_small, dtype=torch.float32)[None, None])  # (1, 1, 4, 4)
assert torch.equal(torch_out[0, 0], torch.tensor(by_hand, dtype=torch.float32))
print("nn.ConvTranspose2d with the same kernel gives exactly the same 4x4 grid")

# %% [markdown]
# With a 3x3 kernel and stride 2 the stamps overlap, unevenly: some output pixels receive one product,
# some two, some four. That uneven coverage tends to print a checkerboard pattern into the output
# (Odena et al., "Deconvolution and checkerboard artifacts", Distill 2016), one reason the U-Net up-samples
# with kernel 2, stride 2. The count of products per output pixel, and the check against PyTorch:

# %%
x3 = [[1, 2, 0], [-1, 3, 1], [2, 0, 1]]
k3 = [[1, 0, 2], [-1, 1, 0], [3, 1, -2]]
for row in stamps(3, 3, 3, stride=2):
    print("  " + " ".join(str(len(cell)) for cell in row))
layer3 = nn.ConvTranspose2d(1, 1, kernel_size=3, stride=2, bias=False)
with torch.no_grad():
    layer3.weight.copy_(torch.tensor(k3, dtype=torch.float32)[None, None])
    torch_out3 = layer3(torch.tensor(x3, dtype=torch.float32)[None, None])  # (1, 1, 7, 7)
assert torch.equal(torch_out3[0, 0], torch.tensor(conv_transpose_by_hand(x3, k3, 2), dtype=torch.float32))
print("nn.ConvTranspose2d(kernel_size=3, stride=2) equals the stamps summed by hand")

# %% [markdown]
# A real `Up` block's layer has many channels: its weight is (C_in, C_out, 2, 2), one 2x2 kernel for
# each pair of input and output channel, and output channel o is the sum over the input channels of
# their stamps, plus a bias. The same stamping, done one input pixel at a time, on `Up(8, 4)`'s layer:

# %%
up_layer = Up(8, 4).up  # ConvTranspose2d(8, 4, kernel_size=2, stride=2): weight (8, 4, 2, 2), bias (4,)
features = torch.randn(8, 3, 3)  # (C_in, h, w)
stamped = torch.zeros(4, 6, 6)  # (C_out, 2h, 2w)
for i in range(3):
    for j in range(3):
        # the stamp of pixel (i, j): sum over c of features[c, i, j] * weight[c]   -> (C_out, 2, 2)
        stamp = (features[:, i, j, None, None, None] * up_layer.weight).sum(dim=0)
        stamped[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2] += stamp
stamped += up_layer.bias[:, None, None]
with torch.no_grad():
    assert torch.allclose(stamped, up_layer(features[None])[0], atol=1e-6)
print(f"Up(8, 4).up on {shape(features[None])}: stamped by hand == the layer's output "
      f"{shape(up_layer(features[None]))}")

# %% [markdown]
# ## A whole U-Net, block by block
#
# `UNet(base_channels=c)` has widths c, 2c, 4c, 8c, 16c from the top level to the bottom. The classic
# network uses c = 64 (31 million parameters); c = 32 trains about four times faster and reached a
# validation Dice of 0.92 on ISIC at 128 px (tutorial 06). Here a lesion image goes through each of the
# model's blocks in turn, exactly as `UNet.forward` calls them; the skips (`x1` ... `x4`) are kept for the
# way up.

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
# ## The U, drawn from the model
#
# The drawing below is not drawn by hand: a *forward hook* (`module.register_forward_hook`) is a function
# PyTorch calls each time a module has run, with the module's inputs and output. One hook on each block
# of the model records, in the order they ran, what went in and what came out. Each block becomes a box,
# placed left to right in that order and lower for each halving of the height, labelled with the shape it
# output. An arrow goes from the block that *made* a tensor to each block that *took* it: a solid arrow
# to the next block, a dashed one for a tensor taken from further back: those are the skip connections,
# found in the model, not assumed.

# %%
def record_blocks(model, image):
    """Run model(image) once with a forward hook on each of the model's blocks (its direct children);
    return [(name, class name, inputs, output)] in the order the blocks ran."""
    calls = []

    def hook(block, inputs, output, name):
        calls.append((name, type(block).__name__, inputs, output))
    handles = [block.register_forward_hook(lambda b, i, o, name=name: hook(b, i, o, name))
               for name, block in model.named_children()]
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    return calls


def draw_unet(model, image, path, title):
    """Draw the blocks model(image) ran as boxes (shape C x H x W of each output) with arrows from each
    tensor's maker to its users; solid for the previous block, dashed (skip connections) otherwise."""
    calls = [("input", "image", (), image)] + record_blocks(model, image)
    colours = {"DoubleConv": "#cfe2f3", "Down": "#cfe2f3", "Up": "#fce5cd", "OutConv": "#d9ead3"}
    fig, ax = plt.subplots(figsize=(1.25 * len(calls) + 0.5, 5.2))
    made_by, boxes = {}, {}  # id(tensor) -> the name of the block that output it; name -> (box, centre)
    levels = 0
    for k, (name, kind, inputs, output) in enumerate(calls):
        level = round(math.log2(image.shape[2] / output.shape[2]))  # how many times H was halved
        levels = max(levels, level)
        cx, cy = 1.25 * k, -1.1 * level
        box = FancyBboxPatch((cx - 0.55, cy - 0.34), 1.1, 0.68, boxstyle="round,pad=0.02",
                             facecolor=colours.get(kind, "#eeeeee"), edgecolor="black", linewidth=0.8)
        ax.add_patch(box)
        boxes[name] = (box, (cx, cy))
        c, h, w = output.shape[1:]
        ax.text(cx, cy, f"{name}\n{kind}\n{c}×{h}×{w}", ha="center", va="center", fontsize=7)
        for tensor in inputs:
            if id(tensor) not in made_by:  # not made by a block (zeros in place of a skip, say): no arrow
                continue
            maker = made_by[id(tensor)]
            skip = maker != calls[k - 1][0]
            (maker_box, maker_centre) = boxes[maker]
            ax.annotate("", xy=(cx, cy), xytext=maker_centre,
                        arrowprops=dict(arrowstyle="-|>", patchA=maker_box, patchB=box, shrinkA=1, shrinkB=1,
                                        color="tab:red" if skip else "black", linestyle="--" if skip else "-"))
        made_by[id(output)] = name
    ax.set_xlim(-0.8, 1.25 * (len(calls) - 1) + 0.8)
    ax.set_ylim(-1.1 * levels - 0.6, 0.6)
    ax.set_axis_off()
    ax.legend(handles=[Line2D([], [], color="black", label="output -> next block"),
                       Line2D([], [], color="tab:red", linestyle="--",
                              label="skip connection: copied across, concatenated in Up")],
              loc="lower right", fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return calls


calls = draw_unet(model, image, os.path.join(OUT, "03_unet_diagram.png"),
                  f"UNet(base_channels=64) on a {SIZE} x {SIZE} image: "
                  "each block's output, channels × height × width")
recorded = {name: output for name, _, _, output in calls}
assert torch.equal(recorded["down4"], x5) and torch.equal(recorded["outc"], logits)  # the same run as above
show(os.path.join(OUT, "03_unet_diagram.png"))

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
# ## What the skip connections buy
#
# At the bottom of the U a 64 x 64 image is a 4 x 4 grid of features: far too coarse to say where a
# border runs to the pixel. The skips hand the decoder the encoder's sharp maps at every level. To see
# what they are worth, the same small U-Net (width 8, on 64 x 64 synthetic lesions; 48 x 48 with `--quick`)
# is trained twice:
#
# - `UNet` itself, and
# - `UNetWithoutSkips`, a subclass whose `forward` hands each `Up` block **zeros** in place of the
#   encoder's features. Everything else is identical: the same blocks, the same 486,553 parameters
#   (the decoder's convolutions keep their weights for the skip channels, which now only ever see zeros),
#   the same initial weights (the same seed builds both), the same batches in the same order, the same
#   loss (BCE + Dice) and optimiser (Adam, learning rate 1e-3). The only difference is the information
#   that crosses the U.
#
# The training loop is written out: for each batch, forward, loss, backward, step (tutorial 06 explains
# each line). There is no augmentation, to keep it short. This is one short run of each, with one seed:
# an illustration, not a measurement of how much skips help in general.

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

# %% [markdown]
# The predicted borders (red) over the true ones (green), for four validation images picked by lesion
# size (the smallest, two in between, the largest), not by how well either model did. The top row is the
# U-Net with skips, the bottom row the one without; each panel's title is that image's Dice.

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
fig.savefig(os.path.join(OUT, "03_skip_connections.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "03_skip_connections.png"))

# %% [markdown]
# What to look for: without skips, every detail of the mask must be rebuilt from the 4 x 4 features at
# the bottom, so the predicted borders come out rounder and smoother than the true ones, often shifted,
# and training starts slower: the network must first learn to carry position through the bottleneck.
#
# In our runs (2-core CPU, PyTorch 2.14, one thread) the U-Net with skips reached a mean validation Dice
# of 0.937 after 10 epochs and the one without 0.839; with `--quick` (3 epochs at 48 px), 0.917 and 0.711.
# Runs this short are noisy: with no augmentation and no learning-rate schedule, the validation Dice
# moves by a few hundredths from one epoch to the next (a 3-epoch run at 64 px reached 0.944 with skips,
# above the 10-epoch run). The gap between the two networks, 0.1 to 0.2, was far larger than that in
# every run we made. Your numbers can differ a little with another PyTorch version or thread count.
#
# ## What each level sees
#
# The same forward hooks, on the two trained networks: one channel of each block's output (the channel
# that varies most over the image) for the second of the images above. The encoders look alike. The
# difference is in the decoder: with skips, the top levels are sharp again; without them, the decoder's
# maps stay as blurred as the bottom they were grown from.

# %%
one = val_images[picked[1]][None]  # (1, 3, T, T)
fig, axes = plt.subplots(2, 11, figsize=(16, 3.6))
for r, (name, (net, _, _)) in enumerate(runs.items()):
    maps = [("input", one)] + [(block, output) for block, _, _, output in record_blocks(net, one)]
    for ax, (block, fmap) in zip(axes[r], maps):
        if block == "input":
            ax.imshow(to_display(fmap[0]).tolist())
        else:
            channel = fmap[0].flatten(1).var(dim=1).argmax()  # the most varied channel
            ax.imshow(fmap[0, channel].tolist(), cmap="viridis")
        ax.set_title(f"{block}\n{fmap.shape[2]}x{fmap.shape[3]}", fontsize=7)
        ax.set_axis_off()
    axes[r][0].set_title(f"{name}\ninput", fontsize=7)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "03_feature_maps.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "03_feature_maps.png"))

# %% [markdown]
# ## Exercises
#
# 1. **Bilinear up-sampling.** Draw `UNet(base_channels=64, bilinear=True)` with `draw_unet`. The `Up`
#    blocks now up-sample by a fixed interpolation with no weights, so the bottom block outputs 512
#    channels instead of 1024 (`DoubleConv` halves the channels instead of the transposed convolution);
#    expect about 17.3 million parameters instead of 31.0 million, and the same output shape.
# 2. **Which skip matters?** In `UNetWithoutSkips.forward`, give back one skip at a time (`x1` only, then
#    `x4` only) and rerun the two trainings. Expect the top skip (`x1`, full resolution) to restore sharp
#    borders the most, and `x4` (8 x 8) alone to help much less.
# 3. **Overlapping stamps.** Call `conv_transpose_by_hand` with a 4x4 kernel and stride 2 (the
#    up-sampling of many GANs) and print the number of products per output pixel with `stamps`. Expect
#    every inner pixel to receive exactly four, evenly, unlike the 3x3 kernel's 1-2-4 pattern; check it
#    against `nn.ConvTranspose2d(1, 1, kernel_size=4, stride=2)` as above.
#
# Next, tutorial 04: a second encoder, ResNet-34, built by hand and loaded with torchvision's weights.
