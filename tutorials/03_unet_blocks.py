# %% [markdown]
# # 03 · The U-Net's blocks, and the transposed convolution
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
# - **prints** a tensor's shape through each block;
# - works the decoder's 2x2 **transposed convolution by hand** (each output pixel written out as the sum
#   of input pixel x kernel weight that lands on it), **prints** the grid and checks it equals
#   `torch.nn.ConvTranspose2d`; then the uneven overlap of a 3x3 kernel, the position pattern even a 2x2
#   kernel prints, and the general output-size formula (padding, output padding, dilation), checked
#   against PyTorch in every setting of a grid;
# - **draws** the three (`out/03_transposed_convolution.png`).
#
# Tutorial 03b puts the blocks together into the whole U-Net. This one builds no data set and trains
# nothing: it runs in seconds, and `--quick` changes nothing but the figure's size. It ends with exercises;
# their answers are in `tutorials/answers/03_unet_blocks.md`.

# %%
import argparse
import itertools
import os
import sys

import torch
import torch.nn as nn

from minunet import DoubleConv, Down, OutConv, Up

parser = argparse.ArgumentParser(description="Tutorial 03: the U-Net's blocks and the transposed convolution")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="accepted as by every tutorial, and unused: this one needs no images (see 03b)")
parser.add_argument("--quick", action="store_true", help="a smaller figure: a smoke run")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


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
# ## Overlapping stamps, and the pattern of positions
#
# With a 3x3 kernel and stride 2 the stamps overlap, unevenly: some output pixels receive one product,
# some two, some four. Odena et al. ("Deconvolution and checkerboard artifacts", Distill, 2016) showed that
# such uneven overlap tends to print checkerboard patterns into generated images, and advised kernels whose
# size the stride divides, or resizing followed by an ordinary convolution. The U-Net paper came a year
# before that analysis; its "up-convolution" (an up-sampling followed by a 2x2 convolution that halves the
# channels) is usually written, as in `Up`, as a 2x2 transposed convolution with stride 2, whose stamps tile
# the output without overlap. The count of products per output pixel of the 3x3 kernel, and the check
# against PyTorch:

# %%
x3 = [[1, 2, 0], [-1, 3, 1], [2, 0, 1]]
k3 = [[1, 0, 2], [-1, 1, 0], [3, 1, -2]]
overlap = [[len(cell) for cell in row] for row in stamps(3, 3, 3, stride=2)]
for row in overlap:
    print("  " + " ".join(str(n) for n in row))
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
# No overlap is not the whole story. With kernel 2 and stride 2, output pixel (2i + a, 2j + b) is input
# pixel (i, j) times kernel weight (a, b): *which* of the four weights a pixel gets depends only on whether
# its row and column are even or odd. Feed the layer a constant input, and out comes the 2x2 kernel tiled
# over the whole map, a pattern that repeats every two pixels, unless the four weights happen to be equal.
# Training can make them so, or use the pattern; nothing forces either. Tutorial 03b looks for this pattern
# in trained networks. On the same freshly initialised layer of `Up(8, 4)` (its first output channel):

# %%
with torch.no_grad():
    flat = up_layer(torch.ones(1, 8, 3, 3))[0, 0]  # (6, 6): a constant input, channel 0 of the output
tile = flat[:2, :2]  # (2, 2): the sum over input channels of their kernels, plus the bias
assert torch.allclose(flat, tile.repeat(3, 3), atol=1e-6)
for row in flat.tolist():
    print("  " + " ".join(f"{v:+.2f}" for v in row))
print(f"a constant input gives the 2x2 tile {[[round(v, 2) for v in r] for r in tile.tolist()]}, repeated")

# %% [markdown]
# ## Odd sizes
#
# A 2x2 max-pool of an odd size rounds down (75 -> 37), so on the way up 2 x 37 = 74 falls one pixel short
# of the skip's 75. `Up` pads the up-sampled map by the difference before concatenating, so that a U-Net
# built of these blocks takes any height and width of at least 32, not only multiples of 16, and its output
# always matches its input (tutorial 03b runs one on 100 x 75):

# %%
low, skip = torch.randn(1, 16, 37, 37), torch.randn(1, 8, 75, 75)
print(f"Up(16, 8) on {shape(low)} and the skip {shape(skip)} -> {shape(Up(16, 8)(low, skip))}")

# %% [markdown]
# ## The output size, in general
#
# The stamps of an input of size `in`, one every `stride` pixels, each `kernel` pixels wide, cover
# (in - 1) x stride + kernel pixels. Three more settings of `nn.ConvTranspose2d` change that:
#
# - `dilation` d spreads the kernel's taps d pixels apart, so a stamp is d x (kernel - 1) + 1 wide;
# - `padding` p *removes* p pixels from each side of the output (the reverse of a convolution's padding,
#   which adds them to its input);
# - `output_padding` adds that many pixels at the end (bottom, right). A strided convolution maps several
#   sizes to one: `Conv2d(kernel_size=3, stride=2, padding=1)` turns both 9 and 10 into 5. The transposed
#   convolution with the same settings gives back 9; `output_padding=1` picks 10. It must be smaller than
#   the stride or the dilation.
#
# Together: **out = (in - 1) x stride - 2 x padding + dilation x (kernel - 1) + output_padding + 1**. The
# function below computes it, and PyTorch is asked for every combination of a grid of settings:

# %%
def transposed_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """The height (or width) that nn.ConvTranspose2d gives for an input of that height (or width)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


checked = 0
for n, k, stride, padding, dilation in itertools.product(range(1, 6), range(1, 5), range(1, 4), range(3), range(1, 3)):
    for output_padding in range(max(stride, dilation)):
        out = transposed_output_size(n, k, stride, padding, output_padding, dilation)
        if out < 1:  # padding larger than the stamps: PyTorch refuses, and so should we
            continue
        probe = nn.ConvTranspose2d(1, 1, k, stride, padding, output_padding, dilation=dilation)
        assert probe(torch.zeros(1, 1, n, n)).shape[-1] == out, (n, k, stride, padding, output_padding, dilation)
        checked += 1
print(f"the formula equals nn.ConvTranspose2d's output size in all {checked} settings tried")
print(f"Conv2d(3, stride=2, padding=1): 9 -> {nn.Conv2d(1, 1, 3, 2, 1)(torch.zeros(1, 1, 9, 9)).shape[-1]}, "
      f"10 -> {nn.Conv2d(1, 1, 3, 2, 1)(torch.zeros(1, 1, 10, 10)).shape[-1]}; "
      f"ConvTranspose2d(3, stride=2, padding=1): 5 -> {transposed_output_size(5, 3, 2, 1)}, "
      f"with output_padding=1: 5 -> {transposed_output_size(5, 3, 2, 1, output_padding=1)}")
print(f"Up's layer, kernel 2, stride 2: 37 -> {transposed_output_size(37, 2, 2)} (twice the input, always)")

# %% [markdown]
# ## The three, drawn
#
# Left, the 2x2 kernel with stride 2 on the 2x2 input above: each output pixel coloured by the input pixel
# whose stamp it holds (four tiles, no overlap). Middle, the 3x3 kernel with stride 2: products per output
# pixel (1, 2 or 4). Right, `Up(8, 4)`'s freshly initialised layer on a constant 6 x 6 input: the 2x2 tile
# repeated.

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

owner = [[2 * cell[0][0] + cell[0][1] for cell in row] for row in terms]  # 0..3: which input pixel stamped it
names = [[f"x{cell[0][0]}{cell[0][1]}" for cell in row] for row in terms]  # its name, x00 ... x11
with torch.no_grad():
    constant = up_layer(torch.ones(1, 8, 6, 6))[0, 0]  # (12, 12)
fig, axes = plt.subplots(1, 3, figsize=(9, 3.4) if args.quick else (11, 4.2), layout="constrained")
panels = [(owner, names, "tab10", "kernel 2, stride 2: the input\npixel whose stamp each output pixel holds"),
          (overlap, overlap, "viridis", "kernel 3, stride 2: products\nper output pixel (1, 2 or 4)"),
          (constant.tolist(), None, "coolwarm", "Up(8, 4).up on a constant input:\nthe 2x2 tile, repeated")]
for ax, (grid, labels, cmap, title) in zip(axes, panels):
    ax.imshow(grid, cmap=cmap, vmin=0 if cmap == "tab10" else None, vmax=9 if cmap == "tab10" else None)
    for r, row in enumerate(labels or []):
        for c, label in enumerate(row):
            ax.text(c, r, str(label), ha="center", va="center", fontsize=8, color="white")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.savefig(os.path.join(OUT, "03_transposed_convolution.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "03_transposed_convolution.png"))

# %% [markdown]
# ## Exercises
#
# Answers: `tutorials/answers/03_unet_blocks.md`; the notebook runs them after its last cell. All three run in
# quick mode (`--quick`), which here prints the same as the full run.
#
# 1. **Overlapping stamps.** *Quick mode.* Count the products per output pixel with `stamps` for a 4x4 kernel
#    and stride 2 on a 4 x 4 input (the up-sampling of many image generators), and check
#    `conv_transpose_by_hand` against `nn.ConvTranspose2d(1, 1, kernel_size=4, stride=2)`. Is the overlap
#    even, as Odena et al. advise, and where is it not?
# 2. **Exactly twice as large.** *Quick mode.* Which settings of `nn.ConvTranspose2d` with stride 2 double
#    every input size? Use `transposed_output_size` to find all those with a kernel of 1 to 4, padding 0 to 2
#    and output padding 0 or 1.
# 3. **Equal weights.** *Quick mode.* Make the four weights of a 1-channel 2x2, stride-2 transposed
#    convolution equal (say all 0.25): what does the layer compute then? Compare it with
#    `torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")`.
#
# Next, tutorial 03b: the whole U-Net, block by block, drawn from the model, trained with and without its
# skip connections, and set beside the 2015 paper's.
