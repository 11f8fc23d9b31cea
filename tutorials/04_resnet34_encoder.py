# %% [markdown]
# # 04 · A ResNet-34 encoder, built by hand and loaded with torchvision's weights
#
# The U-Net of tutorial 03 learns everything from the few hundred lesion images it is given. Another way is
# *transfer learning*: use as the encoder a network already trained on a large, general data set (ImageNet:
# 1.3 million photographs of 1000 kinds of things), whose early layers already detect edges, textures and
# blobs, and train the decoder (and fine-tune the encoder) on lesions (tutorial 07b tries it).
#
# ResNet-34 (He et al., "Deep residual learning for image recognition", arXiv:1512.03385) is a classic
# choice. Its building block, `minunet.BasicBlock`, adds its input back to its output,
# `out = relu(F(x) + x)`: the layers learn a *residual* correction, and the gradient has a direct path
# through every block. That is what made the depth pay. He et al. trained the same 34 layers without the
# shortcuts too: that "plain" network trained, but worse than a plain one of 18 layers (28.54 % against
# 27.94 % top-1 error on ImageNet's validation images, 10-crop testing, their Table 2), while with
# shortcuts the 34 layers beat the 18 (25.03 % against 27.88 %).
# `minunet.ResNet34Encoder` writes the network out by hand, with the same parameter names as
# `torchvision.models.resnet34`, so torchvision's weights load into it one to one.
#
# This tutorial **prints** a BasicBlock's shapes, the encoder's five feature maps, the parameter count of
# each stage next to torchvision's, loads torchvision's weights and **shows** that both networks compute
# the same features, **draws** the ResNet-34 U-Net from the model (`out/04_resunet34_diagram.png`) and the
# five feature maps of a lesion image with random weights (`out/04_encoder_features.png`), and beside them,
# when torchvision's ImageNet file is at hand, the same maps with its weights (`out/04_imagenet_features.png`).
#
# Offline, the torchvision network is randomly initialised (equality holds for any weights). With
# `--imagenet` it downloads torchvision's `ResNet34_Weights.IMAGENET1K_V1` once, to the torch hub cache (how
# large that file is, the tutorial computes); `--weights FILE` loads that file (resnet34-b627a593.pth) from
# disk instead. The pretrained features are drawn from that file, or from the torch hub cache where an earlier
# download left it; without either, one line says so and that figure is skipped (nothing is downloaded). `--quick` uses a smaller input; `--data-root DIR` (in a notebook, the environment variable
# `MINUNET_DATA_ROOT`) takes the lesion image from ISIC 2016. It ends with exercises; their answers are in
# `tutorials/answers/04_resnet34_encoder.md`.

# %%
import argparse
import os
import sys
import tempfile

import torch
import torchvision

from minunet import BasicBlock, ResNet34Encoder, ResNet34UNet
from minunet.data import make_dataset

parser = argparse.ArgumentParser(description="Tutorial 04: the ResNet-34 encoder")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--imagenet", action="store_true", help="download torchvision's ImageNet weights "
                    "(ResNet34_Weights.IMAGENET1K_V1) instead of random ones")
parser.add_argument("--weights", metavar="FILE", help="torchvision's resnet34 state dict file (resnet34-b627a593.pth)")
parser.add_argument("--quick", action="store_true", help="a smaller input: a smoke run in seconds")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 224  # ImageNet networks were trained at 224 x 224
torch.manual_seed(0)
print(f"data: {DATA}, one {SIZE} x {SIZE} image")


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
# ## The BasicBlock
#
# Two 3x3 convolutions with BatchNorm, plus the *shortcut*. Where the block keeps the shape, the shortcut
# is the input itself. Where it halves the height and width (stride 2) and widens the channels, the input
# no longer matches the output, so the shortcut becomes a strided 1x1 convolution (`downsample`) that
# reshapes it.

# %%
x = torch.randn(1, 64, 32, 32)
same, halving = BasicBlock(64, 64), BasicBlock(64, 128, stride=2)
print(f"BasicBlock(64, 64)            {shape(x)} -> {shape(same(x))}, shortcut: the input itself")
print(f"BasicBlock(64, 128, stride=2) {shape(x)} -> {shape(halving(x))}, shortcut: "
      f"{' -> '.join(type(m).__name__ for m in halving.downsample)} (1x1, stride 2)")

# %% [markdown]
# ## The encoder's five feature maps
#
# The stem (a 7x7 convolution with stride 2, BatchNorm, ReLU) halves the image; a max-pool halves it again;
# then four *stages* of 3, 4, 6 and 3 BasicBlocks (3 + 4 + 6 + 3 = 16 blocks of 2 convolutions, plus the
# stem and ImageNet's classifier: 34 layers). Stages 2 to 4 each halve the size and double the channels.
# `forward` returns the map after the stem and after each stage: five scales, from 1/2 to 1/32 of the
# input, which become the skip connections of a U-Net decoder (tutorial 07).

# %%
encoder = ResNet34Encoder().eval()
image = make_dataset(DATA, "val", root=args.data_root, size=SIZE, limit=1)[0][0][None]  # (1, 3, S, S)
with torch.no_grad():
    features = encoder(image)
names = ["stem (conv1, bn1, relu)", "layer1 (3 blocks)", "layer2 (4 blocks)", "layer3 (6 blocks)",
         "layer4 (3 blocks)"]
print(f"input {shape(image)}")
for name, f in zip(names, features):
    print(f"  {name:24s} {shape(f):20s} 1/{image.shape[-1] // f.shape[-1]} of the input")

# %% [markdown]
# ## Parameters per stage, next to torchvision's
#
# Each stage's parameter count, for minunet's encoder and torchvision's resnet34. They match stage by stage;
# torchvision's model has, in addition, the ImageNet classifier `fc` (512 features -> 1000 classes), which
# an encoder does not need.

# %%
if args.imagenet:
    from torchvision.models import ResNet34_Weights
    try:
        reference = torchvision.models.resnet34(weights=ResNet34_Weights.IMAGENET1K_V1)
    except Exception as err:  # offline: no network to download from
        sys.exit(f"could not download torchvision's ImageNet weights ({type(err).__name__}: {err}); run "
                 f"without --imagenet (random weights), or pass --weights FILE")
    weights_name = "ImageNet (IMAGENET1K_V1)"
elif args.weights:
    reference = torchvision.models.resnet34()
    reference.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    weights_name = args.weights
else:
    reference = torchvision.models.resnet34()  # randomly initialised: no download needed
    weights_name = "random (run with --imagenet for ImageNet's)"
reference.eval()

stages = [("stem", ["conv1", "bn1"]), ("layer1", ["layer1"]), ("layer2", ["layer2"]), ("layer3", ["layer3"]),
          ("layer4", ["layer4"]), ("fc (classifier)", ["fc"])]
print(f"{'stage':16s} {'minunet':>12s} {'torchvision':>12s}")
for stage, parts in stages:
    ours = sum(n_params(getattr(encoder, p)) for p in parts if hasattr(encoder, p))
    theirs = sum(n_params(getattr(reference, p)) for p in parts)
    print(f"{stage:16s} {ours:12,d} {theirs:12,d}")
print(f"{'total':16s} {n_params(encoder):12,d} {n_params(reference):12,d}")

# %% [markdown]
# ## Loading torchvision's weights, and checking the result
#
# A *state dict* maps each parameter's name to its tensor. Since every name in `ResNet34Encoder` equals
# torchvision's (`conv1.weight`, `layer1.0.bn2.running_var`, ...), `load_torchvision_state_dict` copies
# them over one to one; it skips the classifier's `fc.*` and names any key that is missing, unexpected or
# of the wrong shape. To check the result, the image goes through both networks, and each of the five
# feature maps is compared: torchvision's model has no "features" output, so its layers are called in
# the same order by hand.

# %%
print(f"torchvision weights: {weights_name}")
print("a few of the", len(reference.state_dict()), "keys:", list(reference.state_dict())[:3], "...")
encoder.load_torchvision_state_dict(reference.state_dict())
with torch.no_grad():
    ours = encoder(image)
    r = reference
    f1 = r.relu(r.bn1(r.conv1(image)))
    f2 = r.layer1(r.maxpool(f1))
    f3 = r.layer2(f2)
    f4 = r.layer3(f3)
    f5 = r.layer4(f4)
for name, a, b in zip(names, ours, [f1, f2, f3, f4, f5]):
    diff = (a - b).abs().max().item()
    print(f"  {name:24s} max |minunet - torchvision| = {diff:.2e}  equal: {torch.allclose(a, b, atol=1e-5)}")
assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours, [f1, f2, f3, f4, f5]))

# %% [markdown]
# A state dict of another network is refused with a message that names what does not fit, rather than
# loading half of it silently. ResNet-18, for example, has fewer blocks per stage:

# %%
try:
    ResNet34Encoder().load_torchvision_state_dict(torchvision.models.resnet18().state_dict())
except ValueError as err:
    print("ValueError:", str(err)[:240], "...")

# %% [markdown]
# ## Into a U-Net
#
# `ResNet34UNet(encoder_weights=...)` builds the encoder, loads the weights (`None`: random; `"imagenet"`:
# torchvision's, downloaded once; or the path of a saved state dict, as here) and adds a decoder of five
# up-sampling blocks (tutorial 07). The encoder holds most of the parameters. The state dict is saved to a
# file first: its size estimates what `--imagenet` downloads, a file of the same tensors (float32, 4 bytes a
# number, for the weights and BatchNorm statistics) whose bookkeeping may differ by a few kilobytes.

# %%
state = reference.state_dict()
numbers = sum(t.numel() for t in state.values())
tensor_bytes = sum(t.numel() * t.element_size() for t in state.values())
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "resnet34.pth")
    torch.save(state, path)
    file_bytes = os.path.getsize(path)
    model = ResNet34UNet(encoder_weights=path)
print(f"resnet34's state dict: {len(state)} tensors, {numbers:,d} numbers, {tensor_bytes:,d} bytes; "
      f"saved: {file_bytes:,d} bytes = {file_bytes / 2**20:.1f} MiB ({file_bytes / 1e6:.1f} MB)")
print("ResNet34UNet's encoder holds torchvision's weights:",
      torch.equal(model.encoder.layer3[2].conv1.weight, reference.layer3[2].conv1.weight))
print(f"ResNet34UNet: encoder {n_params(model.encoder):,d} + decoder {n_params(model.decoder):,d} "
      f"+ head {n_params(model.head):,d} = {n_params(model):,d} parameters")

# %% [markdown]
# ## The ResNet-34 U-Net, drawn from the model
#
# The same drawing as tutorial 03b's U-Net, by the same function (`minunet.plots.plot_blocks`), told this
# time which of the model's modules to watch: the encoder's stem (convolution, BatchNorm, ReLU) and
# max-pool, its four stages, the decoder's five blocks and the head. Compare the two U's: this encoder
# halves the size twice before its first stage, so the U is deeper (1/32 at the bottom, against 1/16); the
# skip at 1/2 comes from the stem, before the max-pool; and the decoder's last block, at full size, has no
# skip to take, since the encoder keeps no map at full resolution.

# %%
from minunet.plots import plot_blocks  # noqa: E402

modules = dict(model.named_modules())
watched = (["encoder.conv1", "encoder.bn1", "encoder.relu", "encoder.maxpool"]
           + [f"encoder.layer{i}" for i in range(1, 5)] + [f"decoder.{i}" for i in range(5)] + ["head"])
calls, arrows = plot_blocks(model.eval(), image, os.path.join(OUT, "04_resunet34_diagram.png"),
                            f"ResNet34UNet on a {SIZE} x {SIZE} image: each watched module's output, "
                            "channels × height × width", blocks=[(name, modules[name]) for name in watched])
print("skip connections found:", ", ".join(f"{maker} -> {taker}" for maker, taker, skip in arrows if skip))
show(os.path.join(OUT, "04_resunet34_diagram.png"))

# %% [markdown]
# ## What the encoder sees
#
# The mean over channels of each feature map, first with random weights (torchvision's initialisation, no
# training). The stem and layer1 are smoothed copies of the image: the lesion shows. From layer2 on, a frame
# grows in from the border. Every convolution pads its input with zeros, so a pixel near the border takes in
# zeros that inner pixels do not, and a corner takes in the most. The deeper the map, the wider each pixel's
# view and the more of the map the frame takes, with dark corners at 1/16 and 1/32. To tell the frame from
# the image, the cell also puts through a *flat* image (the lesion image's mean colour everywhere) and prints
# how alike each of its maps is to the lesion image's (their correlation: 1 when the two maps rise and fall
# together). Where it nears 1, as at 1/32, the map shows the padding, not the image.
#
# A network trained on ImageNet's photographs has filters that respond to edges, colour contrasts and
# textures (Zeiler and Fergus drew them, arXiv:1311.2901), so its maps are expected to follow the lesion rather
# than the frame. When torchvision's ImageNet file is at hand (`--weights FILE`, or the torch hub cache after
# `--imagenet`), the second figure sets its maps under the random ones and the same correlations are printed
# for them; without the file, one line says so. Either way, note how little is left of the layout at 1/32:
# the decoder will need the finer maps, through the skip connections, to draw a precise border.

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

from minunet.models.resnet import IMAGENET_WEIGHTS_FILE  # noqa: E402
from minunet.plots import to_display  # noqa: E402

flat = image.mean(dim=(2, 3), keepdim=True).expand_as(image)  # (1, 3, S, S): the image's mean colour everywhere


def features_of(label, net):
    """(label, the lesion image's five feature maps through net); prints how alike each map's mean over
    channels is to the flat image's."""
    with torch.no_grad():
        maps, flat_maps = net(image), net(flat)
    alike = [torch.corrcoef(torch.stack([a[0].mean(dim=0).flatten(), b[0].mean(dim=0).flatten()]))[0, 1].item()
             for a, b in zip(maps, flat_maps)]
    print(f"{label:22s} like a flat image's maps: " + ", ".join(
        f"{name.split()[0]} {c:.2f}" for name, c in zip(names, alike)))
    return label, maps


def draw_features(rows, path):
    """One row per (label, five feature maps): the input, then each map's mean over its channels."""
    fig, axes = plt.subplots(len(rows), 6, figsize=(12, 2.4 * len(rows)), squeeze=False)
    for row, (label, maps) in zip(axes, rows):
        row[0].imshow(to_display(image[0]).tolist())
        row[0].set_title(f"input\n{label}", fontsize=8)
        for ax, name, f in zip(row[1:], names, maps):
            ax.imshow(f[0].mean(dim=0).tolist(), cmap="viridis")
            ax.set_title(f"{name.split()[0]}\n{f.shape[1]} ch, {f.shape[2]}x{f.shape[3]}", fontsize=8)
        for ax in row:
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    show(path)


torch.manual_seed(0)
rows = [features_of("random weights", ResNet34Encoder().eval())]
draw_features(rows, os.path.join(OUT, "04_encoder_features.png"))
imagenet_file = args.weights or os.path.join(torch.hub.get_dir(), "checkpoints", IMAGENET_WEIGHTS_FILE)
if os.path.isfile(imagenet_file):
    pretrained = ResNet34Encoder().eval()
    pretrained.load_torchvision_state_dict(torch.load(imagenet_file, map_location="cpu", weights_only=True))
    rows.append(features_of(os.path.basename(imagenet_file), pretrained))
    draw_features(rows, os.path.join(OUT, "04_imagenet_features.png"))
else:
    print(f"torchvision's ImageNet file is not at hand (no {IMAGENET_WEIGHTS_FILE} in "
          f"{os.path.dirname(imagenet_file).replace(os.path.expanduser('~'), '~')}; --weights FILE or --imagenet "
          "brings it): the pretrained features are not drawn")

# %% [markdown]
# ## Exercises
#
# Answers: `tutorials/answers/04_resnet34_encoder.md`; the notebook runs them after its last cell. All three
# run in quick mode (`--quick`), which here prints the same as the full run.
#
# 1. **Parameters by hand.** *Quick mode.* Work out the parameter counts of `BasicBlock(64, 64)` and of
#    `BasicBlock(64, 128, stride=2)` from their layers (a 3x3 convolution from a to b channels without bias
#    has 9ab weights; a BatchNorm of b channels has 2b parameters), and check them with `n_params`.
# 2. **ResNet-18.** *Quick mode.* torchvision's `resnet18` has 2, 2, 2, 2 blocks per stage instead of 3, 4, 6,
#    3. Print its parameters per stage next to resnet34's, as above. How many parameters does the encoder
#    lose, and in which stage the most?
# 3. **Odd sizes.** *Quick mode.* Put a 100 x 75 image (`torch.randn(1, 3, 100, 75)`) through `encoder` and
#    `model`. What sizes do the five feature maps have, and the U-Net's output?
#
# Next, tutorial 05: the losses the models are trained with and the metrics they are scored by.
