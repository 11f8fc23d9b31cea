# %% [markdown]
# # 10 · Several classes, on real chest X-rays
#
# Until now a pixel was lesion or not: one logit, a sigmoid, a threshold. Many medical images have more to
# tell apart. A chest X-ray shows the lungs, the heart and the clavicles, and a radiologist measures each.
# This tutorial
#
# - goes from one class to several: the **sigmoid against the softmax**, and why the binary case is the same
#   thing (**printed**: the two computed side by side);
# - reads 197 real chest X-rays with expert label maps of four classes (the JSRT images with the SCR maps:
#   background, lungs, heart, clavicles), **names** the classes with a `classes.txt` beside the folder, counts
#   each class's pixels, and **draws** four of them with one colour per class (`out/10_classes.png`);
# - computes the **softmax cross-entropy** by hand against `torch.nn.functional.cross_entropy`;
# - trains a ResNet-34 U-Net on one input channel, with the augmentation an upright image allows, and scores it
#   **per class** (**printed**), with a **confusion matrix** between classes (**drawn**:
#   `out/10_confusion.png`) and **where the heart and the lungs are confused** (**drawn**:
#   `out/10_heart_lungs.png`);
# - says how minunet treats gray images (the normalisation, the first convolution of an ImageNet encoder).
#
# The X-rays come with `--xrays DIR` (or `$MINUNET_XRAYS`): a folder of `images/` and `masks/` whose pixel
# values are the class indices 0..3, such as `../shared/data/jsrt`. Without it the tutorial says so and
# trains on the offline stand-in instead: synthetic lesions with a marker stroke as a third class.
#
# **How long it takes.** `--quick`: about a minute and a half on the X-rays (128 px, a plain U-Net, 12 epochs; an
# estimate from one run's 91 s of CPU time on one core), seconds on the stand-in. Without it: 256 px, the ResNet-34
# U-Net from scratch, 20 epochs, the run bench/RESULTS.md compares with segmentation_models_pytorch: about 10
# minutes on a 2-core CPU. It ends with exercises; their answers are in `tutorials/answers/10_several_classes.md`.

# %%
import argparse
import os
import sys

import torch
import torch.nn.functional as F

from minunet.data import make_dataset
from minunet.evaluation import evaluate
from minunet.inference import Inference
from minunet.losses import LOSSES, bce_with_logits, cross_entropy, loss_name
from minunet.models import new_model
from minunet.pictures import class_overlay
from minunet.recipe import Recipe
from minunet.training import fit
from minunet.transforms import normalisation, tensor_to_pil

parser = argparse.ArgumentParser(description="Tutorial 10: several classes, on real chest X-rays")
parser.add_argument("--xrays", metavar="DIR", default=os.environ.get("MINUNET_XRAYS"),
                    help="chest X-rays: DIR/images and DIR/masks of class indices 0..3, such as the JSRT set "
                    "(default: $MINUNET_XRAYS, else synthetic lesions with an ink stroke)")
parser.add_argument("--quick", action="store_true", help="a small size, a plain U-Net, few epochs")
parser.add_argument("--epochs", type=int, help="epochs (default 20; 12 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where the figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
XRAYS = bool(args.xrays)
EPOCHS = args.epochs or (12 if args.quick else 20)
if args.quick:  # small tensors: one thread beats several
    torch.set_num_threads(1)


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image as ShowImage, display
        display(ShowImage(filename=path))


# %% [markdown]
# ## From one class to several
#
# With two classes the model gives one logit x per pixel, and the lesion's probability is sigmoid(x). With K
# classes it gives K logits per pixel, and their **softmax** gives the probabilities:
#
#     p_c = exp(x_c) / (exp(x_1) + ... + exp(x_K))        K numbers that add up to 1
#
# For K = 2 the two are the same thing. Give the background the logit 0 and the lesion x:
# softmax((0, x))[1] = exp(x) / (1 + exp(x)) = sigmoid(x). So minunet keeps one logit and the sigmoid for two
# classes, and uses K logits and the softmax for more.

# %%
x = torch.tensor([-3.0, -0.5, 0.0, 1.0, 4.0])
pair = torch.stack([torch.zeros_like(x), x])  # (2, 5): background 0, lesion x
print("sigmoid(x)        ", [round(v, 4) for v in torch.sigmoid(x).tolist()])
print("softmax((0, x))[1]", [round(v, 4) for v in torch.softmax(pair, 0)[1].tolist()])
target = torch.tensor([0, 1, 1, 0, 1])
print(f"BCE {bce_with_logits(x.view(1, 1, 1, 5), target.view(1, 1, 1, 5).float()):.6f} = cross-entropy "
      f"{cross_entropy(pair.view(1, 2, 1, 5), target.view(1, 1, 1, 5)):.6f}")  # (B, K, H, W) logits, K = 2

# %% [markdown]
# A pixel's class is the one of highest probability (the argmax): there is no threshold to choose.
#
# ## Chest X-rays of four classes
#
# The JSRT images are 197 chest radiographs, one per patient, gray, 512 x 512 pixels. Each has a label map
# drawn by experts (the SCR annotation): 0 background, 1 lungs, 2 heart, 3 clavicles. The folder's README says
# where they come from and how they were reduced.
#
# A folder of your own names its classes in `classes.txt`, one name per line, the background first: minunet
# reads it for the number of classes and shows the names in the log, the scores, the report and the overlays.
# The JSRT folder has none, so the tutorial makes a folder in `out/` that points to its images and masks and
# adds one (the data is not copied).

# %%
NAMES = ["background", "lungs", "heart", "clavicles"]
if XRAYS:
    root = os.path.join(OUT, "10_xrays")  # images and masks linked, classes.txt added
    os.makedirs(root, exist_ok=True)
    for part in ("images", "masks"):
        link = os.path.join(root, part)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(args.xrays, part)), link)
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("\n".join(NAMES) + "\n")
    SIZE = 128 if args.quick else 256
    train_set = make_dataset("folder", "train", root, SIZE, augment=True, channels=1)
    val_set = make_dataset("folder", "val", root, SIZE, channels=1)
else:
    print("no chest X-rays given (--xrays DIR or $MINUNET_XRAYS): the stand-in instead, gray synthetic lesions "
          "with a marker stroke as class 2")
    SIZE = 64 if args.quick else 128
    train_set = make_dataset("synthetic", "train", size=SIZE, augment=True, limit=64 if args.quick else 200,
                             classes=3, channels=1)
    val_set = make_dataset("synthetic", "val", size=SIZE, limit=21 if args.quick else 66, classes=3, channels=1)
names = train_set.spec.classes
print(f"{len(train_set)} training and {len(val_set)} validation images at {SIZE} px, "
      f"{train_set.spec.channels} channel, {len(names)} classes: {', '.join(names)}")
counts = torch.bincount(train_set.masks.flatten().long(), minlength=len(names))
print("pixels of each class:", ", ".join(f"{n} {c / counts.sum():.1%}" for n, c in zip(names, counts.tolist())))
print(f"which way up: {train_set.orientation}")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, i in zip(axes, range(4)):
    image = train_set.images[i].expand(3, -1, -1)  # (3, S, S): gray shown as RGB
    image = F.interpolate(image[None].float(), size=256, mode="bilinear")[0].round().to(torch.uint8)  # (3, 256, 256)
    labels = F.interpolate(train_set.masks[i][None].float(), size=256, mode="nearest")[0, 0].long()  # (256, 256)
    ax.imshow(class_overlay(image, labels, names))  # drawn at 256 px, so that the legend covers little
    ax.set_title(train_set.ids[i], fontsize=8)
    ax.axis("off")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "10_classes.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "10_classes.png"))

# %% [markdown]
# Two things to notice. The classes are far from even: the clavicles are about 2 % of the pixels, a few pixels
# thick at 128 px. And an X-ray has an up: the heart sits on the patient's left (the right of the picture),
# the clavicles at the top. A skin lesion has no up, so ISIC's training flips images both ways and turns them
# up to 30 degrees; here that would show the model upside-down chests it never meets. minunet decides this
# from the data (`minunet.data.modality`): gray images and X-ray datasets are `upright`, and their training
# flips them left-right only (which keeps every label true, since left and right lungs share one class) and
# turns them by up to 15 degrees. `minunet train` prints this as a note and records it in the checkpoint.
# (The synthetic stand-in, gray too, stays `any`: its lesions have no up, and minunet knows it by its name.)
#
# ## The loss of several classes
#
# Cross-entropy is BCE's counterpart: per pixel, minus the log of the true class's probability. By hand, with
# the log-sum-exp trick (exp never sees a positive number):

# %%
g = torch.Generator().manual_seed(0)
logits, labels = torch.randn(1, 4, 4, 4, generator=g) * 3, torch.randint(0, 4, (1, 1, 4, 4), generator=g)
m = logits.amax(1, keepdim=True)  # (1, 1, 4, 4): each pixel's largest logit
by_hand = (m + torch.log(torch.exp(logits - m).sum(1, keepdim=True)) - logits.gather(1, labels)).mean()
print(f"by hand {by_hand:.6f}  minunet {cross_entropy(logits, labels):.6f}  "
      f"torch {F.cross_entropy(logits, labels[:, 0]):.6f}")
recipe_loss = Recipe().loss
k = logits.shape[1]  # the made-up logits' classes: 4
print(f"the recipe's loss {recipe_loss!r} trains, for {k} classes, "
      f"{loss_name(recipe_loss, k)!r}: {LOSSES[recipe_loss]()(logits, labels):.6f}")

# %% [markdown]
# Every loss of `minunet.losses` takes one logit and a mask, or K logits and class indices: `loss_name` says
# what a name trains on K classes. The overlap half (Jaccard or Dice) is computed for each **foreground**
# class in each image and averaged, so the clavicles count as much as the lungs, whatever their share of the
# pixels; the background, most of every image, is left out of it.
#
# The metrics follow the same rule. Each class is scored as its own mask (its pixels against the rest), and an
# image's score is the mean over its foreground classes. A class in neither the truth nor the prediction of an
# image has nothing to score there: it is left out of that image (NaN), as nnU-Net and MONAI do.
#
# ## Training and scoring per class
#
# The full run is the one bench/RESULTS.md measures against segmentation_models_pytorch ("Several classes on
# real X-rays"): the ResNet-34 U-Net from scratch (no ImageNet file here), 256 px, 20 epochs, minunet's
# default recipe for the data (`Recipe(...).for_data(train_set)` makes "auto" the data's orientation). The
# quick run trains the plain U-Net at 128 px with a higher learning rate, to learn something in a minute.
# Both score without test-time flips, so the table and the confusion matrix below are one forward pass.

# %%
if args.quick:
    recipe = Recipe(size=SIZE, epochs=EPOCHS, batch_size=8, lr=3e-3, tta=False)
else:
    recipe = Recipe(model="resunet34", encoder_weights="none", size=SIZE, epochs=EPOCHS, tta=False)
recipe = recipe.for_data(train_set)
print(f"model {recipe.model}, {recipe.epochs} epochs, orientation {recipe.orientation}")
model = new_model(recipe, train_set.spec)  # in: 1 channel; out: one logit per class
history = fit(model, train_set, val_set, recipe, log=None)  # left at its last epoch's weights
best = max(row["val_dice"] for row in history)
last = history[-1]
print(f"validation Dice, mean over the foreground classes: best {best:.4f}, last epoch's {last['val_dice']:.4f} "
      f"(epoch {last['epoch']}, the model scored below)")
mean, std = normalisation(train_set.spec.channels)
inference = Inference(size=SIZE, mean=mean, std=std, tta=False, spec=train_set.spec)
scores = evaluate(model, val_set, inference, pictures=True)
for name, means in scores["per_class"].items():
    print(f"  {name:<10} Dice {means['dice']:.4f}  Jaccard {means['jaccard']:.4f}  "
          f"sensitivity {means['sensitivity']:.4f}")
if args.quick:  # the quick run learns every foreground class
    assert min(scores["per_class"][name]["dice"] for name in names[1:]) >= 0.6, scores["per_class"]

# %% [markdown]
# The background's line is printed for completeness: the validation Dice above is the mean over the
# foreground classes, without it.
#
# The confusion matrix counts, over all validation pixels, each true class (row) against the predicted one
# (column). Divided by their row's sum, the numbers say where each class's pixels went.

# %%
confusion = torch.tensor(scores["confusion"], dtype=torch.float64)  # (K, K): true x predicted pixel counts
rows = confusion / confusion.sum(1, keepdim=True).clamp(min=1)
fig, ax = plt.subplots(figsize=(4.4, 3.8))
ax.imshow(rows.tolist(), cmap="Blues", vmin=0, vmax=1)
for i in range(len(names)):
    for j in range(len(names)):
        v = rows[i, j].item()
        ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="white" if v > 0.5 else "black", fontsize=8)
ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true",
       title="where each class's pixels went")
ax.set_xticklabels(names, fontsize=7, rotation=30)
ax.set_yticklabels(names, fontsize=7)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "10_confusion.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "10_confusion.png"))
for i, name in enumerate(names[1:], start=1):
    j = max((j for j in range(len(names)) if j != i), key=lambda j: rows[i, j].item())
    print(f"{name}: {rows[i, i]:.1%} found; the most of the rest went to {names[j]} ({rows[i, j]:.1%})")

# %% [markdown]
# Where a class's missed pixels went says what the model mixes up. A border drawn a pixel too far in or out
# sends them to the background. A clavicle lies over a lung (where they cross, the experts labelled the pixel
# clavicle), so the clavicles' misses also go to the lungs. The heart and the lungs meet at a soft edge: the
# heart's shadow fades into the lung field. Below, the validation images with the most pixels of heart and
# lungs confused, those pixels marked: heart read as lungs in red, lungs read as heart in yellow.

# %%
pictures = scores["pictures"]  # per image: (image (3, S, S) uint8, truth (S, S), prediction (S, S))
heart, lungs = (names.index("heart"), names.index("lungs")) if XRAYS else (2, 1)
confused = [((t == heart) & (p == lungs), (t == lungs) & (p == heart)) for _, t, p in pictures]
order = sorted(range(len(pictures)), key=lambda i: -int(confused[i][0].sum() + confused[i][1].sum()))[:3]
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, i in zip(axes, order):
    image, truth, _ = pictures[i]
    shown = image.clone()  # (3, S, S) uint8
    shown[:, confused[i][0]] = torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None]  # red
    shown[:, confused[i][1]] = torch.tensor([255, 255, 0], dtype=torch.uint8)[:, None]  # yellow
    ax.imshow(tensor_to_pil(shown))
    ax.contour((truth == heart).float().tolist(), levels=[0.5], colors="cyan", linewidths=0.5, linestyles="dashed")
    ax.set_title(f"{scores['ids'][i]}: {int(confused[i][0].sum())} + {int(confused[i][1].sum())} px", fontsize=8)
    ax.axis("off")
fig.suptitle(f"{names[heart]} read as {names[lungs]} (red), {names[lungs]} as {names[heart]} (yellow); "
             f"cyan: the true {names[heart]}", fontsize=9)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "10_heart_lungs.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "10_heart_lungs.png"))
print(f"{rows[heart, lungs]:.2%} of the {names[heart]} pixels were read as {names[lungs]}, {rows[lungs, heart]:.2%} "
      f"of the {names[lungs]} pixels as {names[heart]}")

# %% [markdown]
# Read the picture with the last line: the pixels confused between heart and lungs lie in thin slivers along
# their shared border, where the experts' line and the model's differ by a pixel or two. Compare them with the
# line "heart: ... the most of the rest went to" above: whether the heart loses more pixels to the lungs or to
# the background says which of its borders is the harder one to draw.

# %% [markdown]
# ## Gray images
#
# X-ray, ultrasound and CT images have one channel, and a gray dataset trains a model of one input channel
# (`UNet(in_channels=1)`). minunet normalises it with one mean and one std, ImageNet's averaged over its three
# channels. An ImageNet encoder's first convolution expects three channels; for one, minunet **sums** its
# weights over the colour channels. On a gray image repeated three times, the sum gives what the three
# channels give, exactly when the three copies are normalised alike (one mean and std, as here):

# %%
weight = torch.randn(64, 3, 7, 7, generator=g, dtype=torch.float64)  # a first convolution's: (out, in = RGB, 7, 7)
gray = torch.rand(1, 1, 32, 32, generator=g, dtype=torch.float64)  # (B, 1, H, W), in float64: no rounding to see
three = F.conv2d(gray.expand(-1, 3, -1, -1), weight)  # the gray image repeated as RGB
one = F.conv2d(gray, weight.sum(1, keepdim=True))  # the summed weights on one channel
print(f"normalisation of one channel: mean and std {normalisation(1)}; the two convolutions differ by at most "
      f"{(three - one).abs().max():.1e}")

# %% [markdown]
# From the command line, after a run with `--xrays` made `tutorials/out/10_xrays` (from the repository's
# folder), the full run is
#
#     minunet train --data folder --data-root tutorials/out/10_xrays --channels 1 --model resunet34 \
#         --encoder-weights none --size 256 --no-tta --out runs/xrays
#     minunet evaluate --checkpoint runs/xrays/best.pt --data folder --data-root tutorials/out/10_xrays \
#         --no-tta --json scores.json
#     minunet predict --checkpoint runs/xrays/best.pt --input my_xrays/ --output masks/ --overlay
#
# (`--no-tta` as in the tutorial; without it, validation and evaluation average the image and its left-right flip.)
# `train` reads the four classes and their names from classes.txt and prints them, reads the images as gray
# (`--channels 1`: without it a folder's images are read as RGB, three equal channels) and prints the upright note;
# `evaluate` scores each class by name; `predict` writes each mask as a palette PNG whose values are the class
# indices, and overlays in one colour per class with the names as a legend. A MedSegBench dataset of several classes
# trains the same way by name, `minunet train --data wbc`.
#
# ## Exercises
#
# Answers: `tutorials/answers/10_several_classes.md`; the notebook runs them after its last cell. All three
# run in quick mode (`--quick` without `--xrays`: the stand-in, seconds), so that your numbers can be checked
# against the answers.
#
# 1. **Sigmoid is a softmax of two.** *Quick mode.* Give the background the logit 0 and check, for a few
#    logits x, that `cross_entropy` of (0, x) equals `bce_with_logits(x)`, in its value and in its gradient
#    with respect to x.
# 2. **The recipe's losses for four classes.** *Quick mode.* What does each name of `minunet.losses.LOSSES`
#    train for four classes (`loss_name(name, 4)`), and what is its value on the logits and labels of "The
#    loss of several classes"? Check that `LOSSES["bce"]()` there is torch's cross-entropy.
# 3. **Reading the confusion matrix.** *Quick mode.* What do its row sums count, and its column sums? Check
#    the row sums against the validation masks, then compute the last class's Dice (the stand-in's ink) from
#    the matrix alone: why is it not the per-class Dice printed above?
