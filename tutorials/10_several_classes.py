# %% [markdown]
# # 10 · Several classes, and gray images
#
# Until now a pixel was lesion or not: one logit, a sigmoid, a threshold. Many medical images have more to
# tell apart: a cell's nucleus and cytoplasm (MedSegBench's `wbc`), eight organs in an ultrasound
# (`abdomenus`), or, on skin, a lesion and the ink a surgeon drew beside it. This tutorial
#
# - goes from one class to several: the **sigmoid against the softmax**, and why the binary case is the same
#   thing (**printed**: the two computed side by side);
# - makes a synthetic set of three classes offline, background, lesion and a violet marker stroke
#   (`make_dataset("synthetic", ..., classes=3)`, `minunet train --data synthetic --classes 3`), and **draws**
#   it with one colour per class (`out/10_classes.png`);
# - computes the **softmax cross-entropy** by hand against `torch.nn.functional.cross_entropy`, and the soft
#   Jaccard per class that the recipe's loss becomes for several classes;
# - trains a U-Net on it and scores it **per class**, with a **confusion matrix** between classes (**drawn**:
#   `out/10_confusion.png`);
# - trains the same on the **gray** version of the images (one input channel), and says how minunet treats
#   gray images (the normalisation, the ResNet-34's first convolution).
#
# With `--data NAME --data-root DIR`, where DIR holds MedSegBench's `NAME_128.npz` (for instance `wbc`, 3
# classes in colour, or `abdomenus`, 9 in gray), it trains on that instead.
#
# **How long it takes.** `--quick`: seconds (64 images at 64 px, 10 epochs, twice). Without it: 200 images at
# 128 px, 20 epochs, twice: minutes on a 2-core CPU. It ends with exercises; their answers are in
# `tutorials/answers/10_several_classes.md`.

# %%
import argparse
import os
import sys

import torch
import torch.nn.functional as F

from minunet.data import make_dataset
from minunet.data.catalog import dataset_names
from minunet.evaluation import evaluate
from minunet.inference import Inference
from minunet.losses import LOSSES, bce_with_logits, cross_entropy, loss_name
from minunet.models import new_model
from minunet.pictures import class_overlay
from minunet.recipe import Recipe
from minunet.training import fit
from minunet.transforms import normalisation

parser = argparse.ArgumentParser(description="Tutorial 10: several classes, and gray images")
parser.add_argument("--data", default="synthetic", choices=("synthetic",) + dataset_names(),
                    help="synthetic (default: background, lesion, ink) or a MedSegBench name whose npz is at hand")
parser.add_argument("--data-root", metavar="DIR", help="the folder holding NAME_128.npz (default ~/.medsegbench)")
parser.add_argument("--quick", action="store_true", help="64 small images, 10 epochs: seconds")
parser.add_argument("--epochs", type=int, help="epochs (default 20, 10 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where the figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
N = 64 if args.quick else 200
SIZE = 64 if args.quick else 128
EPOCHS = args.epochs or (10 if args.quick else 20)
if args.quick:  # tiny tensors: one thread beats several
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
# With two classes the model gives one logit x per pixel and the lesion's probability is sigmoid(x). With K
# classes it gives K logits per pixel, and the probabilities are their **softmax**: p_c = exp(x_c) / sum_j
# exp(x_j), K numbers that add up to 1. The two are the same thing for K = 2: give the background the logit 0
# and the lesion x, and softmax((0, x))[1] = exp(x) / (1 + exp(x)) = sigmoid(x). So minunet keeps one logit and
# the sigmoid for two classes (the checkpoints and scores of the earlier tutorials stay as they were) and uses
# K logits and the softmax for more.

# %%
x = torch.tensor([-3.0, -0.5, 0.0, 1.0, 4.0])
pair = torch.stack([torch.zeros_like(x), x])  # (2, 5): background 0, lesion x
print("sigmoid(x)        ", [round(v, 4) for v in torch.sigmoid(x).tolist()])
print("softmax((0, x))[1]", [round(v, 4) for v in torch.softmax(pair, 0)[1].tolist()])
target = torch.tensor([0, 1, 1, 0, 1])
print(f"BCE {bce_with_logits(x.view(1, 1, 1, 5), target.view(1, 1, 1, 5).float()):.6f} = cross-entropy "
      f"{cross_entropy(pair.view(1, 2, 1, 5), target.view(1, 1, 1, 5)):.6f}")  # (B, K, H, W) logits, K = 2

# %% [markdown]
# A pixel's class is then the one of highest probability (the argmax): no threshold. The decision is made in
# one place, `Inference.masks`, for two classes (above the threshold) and for several (the argmax); with test-
# time augmentation it averages the softmax of the image and its flips before taking it.
#
# ## Three classes, made offline
#
# The synthetic lesions of the earlier tutorials, with a violet marker stroke drawn near the border of each:
# class 2, over the lesion where they cross. The stroke is straight and even, the lesion irregular, so a
# network can tell them apart even in gray.

# %%
if args.data == "synthetic":
    train_set = make_dataset("synthetic", "train", size=SIZE, augment=True, limit=N, classes=3)
    val_set = make_dataset("synthetic", "val", size=SIZE, limit=N // 3, classes=3)
else:  # a MedSegBench dataset at hand: its channels and classes are medsegbench's
    train_set = make_dataset(args.data, "train", args.data_root, 128, augment=True, limit=N)
    val_set = make_dataset(args.data, "val", args.data_root, 128, limit=N // 3)
names = train_set.spec.classes
print(f"{args.data}: {len(train_set)} training and {len(val_set)} validation images, "
      f"{train_set.spec.channels} channel(s), {len(names)} classes: {', '.join(names)}")
counts = torch.bincount(train_set.masks.flatten().long(), minlength=len(names))
print("pixels of each class:", ", ".join(f"{n} {c / counts.sum():.1%}" for n, c in zip(names, counts.tolist())))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, i in zip(axes, range(4)):
    image = train_set.images[i].expand(3, -1, -1)  # (3, S, S): gray shown as RGB
    ax.imshow(class_overlay(image, train_set.masks[i, 0], names))
    ax.set_title(train_set.ids[i], fontsize=8)
    ax.axis("off")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "10_classes.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "10_classes.png"))

# %% [markdown]
# ## The loss of several classes
#
# Cross-entropy is BCE's counterpart: per pixel, minus the log of the true class's probability. Written with
# the log-sum-exp trick (exp never sees a positive number), by hand it is below. Every loss of `minunet.losses`
# takes either one logit and a mask or K logits and class indices, so `LOSSES["bce"]` trains cross-entropy on
# K logits, and the recipe's BCE + Jaccard becomes CE + Jaccard (`loss_name` says what a name trains):

# %%
g = torch.Generator().manual_seed(0)
logits, labels = torch.randn(1, 3, 4, 4, generator=g) * 3, torch.randint(0, 3, (1, 1, 4, 4), generator=g)
m = logits.amax(1, keepdim=True)
by_hand = (m + torch.log(torch.exp(logits - m).sum(1, keepdim=True)) - logits.gather(1, labels)).mean()
print(f"by hand {by_hand:.6f}  minunet {cross_entropy(logits, labels):.6f}  "
      f"torch {F.cross_entropy(logits, labels[:, 0]):.6f}")
loss = LOSSES[Recipe().loss]()  # one module for any number of classes: here K logits and class indices
print(f"the recipe's loss {Recipe().loss!r} trains, for {len(names)} classes, "
      f"{loss_name(Recipe().loss, len(names))!r}: {loss(logits, labels):.6f}")

# %% [markdown]
# The Jaccard half is the soft Jaccard of each **foreground** class (1..K-1) in each image, averaged: the
# background, most of every image, would otherwise dominate it. The metrics follow the same rule: each class
# is scored as its own mask (its pixels against the rest) with the ISIC metrics, and an image's score is the
# mean over its foreground classes. A class in neither the truth nor the prediction of an image has nothing to
# score there: it is left out of that image (NaN), as nnU-Net and MONAI do. Scoring it 1, the binary ISIC
# rule for an empty mask predicted empty, would reward a model for every class an image lacks: on images
# without ink, a model that finds no lesion would still score (0 + 1) / 2 = 0.5. A class in no image of a
# split is named in a note, and its scores there are NaN.
#
# ## Training and scoring per class

#
# The recipe differs from the default in three ways, each for a short run on a small set: a learning rate of
# 3e-3 and batches of 8 (more, larger steps in few epochs), width 8 with `--quick` (speed), and no flip TTA,
# so that the validation scores, the per-class table and the confusion matrix are all one forward pass.

# %%
recipe = Recipe(epochs=EPOCHS, batch_size=8, base_channels=8 if args.quick else 16, lr=3e-3, tta=False)


def train(train_set, val_set):
    """A U-Net trained on the data's channels and classes, left at its last epoch's weights; (model, history)."""
    model = new_model(recipe, train_set.spec)  # in: the data's channels; out: one logit per class
    history = fit(model, train_set, val_set, recipe, log=None)
    return model, history


model, history = train(train_set, val_set)
best = max(row["val_dice"] for row in history)
best_epoch = next(row["epoch"] for row in history if row["val_dice"] == best)
print(f"best validation Dice, mean over the foreground classes: {best:.4f} (epoch {best_epoch}); the last "
      f"epoch's, whose model is scored below: {history[-1]['val_dice']:.4f} (epoch {history[-1]['epoch']})")
if args.quick and args.data == "synthetic":
    assert best >= 0.75, f"the quick run should learn: {best:.4f}"
mean, std = normalisation(train_set.spec.channels)
scores = evaluate(model, val_set, Inference(size=SIZE, mean=mean, std=std, tta=False, spec=train_set.spec))
for name, means in scores["per_class"].items():
    print(f"  {name:<12} Dice {means['dice']:.4f}  Jaccard {means['jaccard']:.4f}  "
          f"sensitivity {means['sensitivity']:.4f}")

# %% [markdown]
# The confusion matrix counts, over all validation pixels, each true class (row) against the predicted one
# (column). Its rows, divided by their sums, say where each class's pixels went: a stroke read as lesion shows
# in the row "ink", column "lesion".

# %%
confusion = torch.tensor(scores["confusion"], dtype=torch.float64)
rows = confusion / confusion.sum(1, keepdim=True).clamp(min=1)
fig, ax = plt.subplots(figsize=(4.2, 3.6))
ax.imshow(rows.tolist(), cmap="Blues", vmin=0, vmax=1)
for (i, j), v in zip([(i, j) for i in range(len(names)) for j in range(len(names))], rows.flatten().tolist()):
    ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v > 0.5 else "black", fontsize=8)
ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true",
       title="where each class's pixels went")
ax.set_xticklabels(names, fontsize=7, rotation=30)
ax.set_yticklabels(names, fontsize=7)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "10_confusion.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "10_confusion.png"))

# %% [markdown]
# ## Gray images
#
# Ultrasound, X-ray and microscopy images often have one channel. A gray dataset trains a model of one input
# channel (`UNet(in_channels=1)`). It is normalised with one mean and one std, ImageNet's averaged over its
# three channels; the ResNet-34 U-Net loads the ImageNet weights of its first convolution **summed** over the
# colour channels. On a gray image that gives what the colour weights give on the image repeated three times,
# exactly when the three copies are normalised alike (one mean and std, as here); with ImageNet's own mean and
# std per channel the three copies differ a little, and so do the two answers. The same three classes, in gray:

# %%
if args.data == "synthetic":
    gray_train = make_dataset("synthetic", "train", size=SIZE, augment=True, limit=N, classes=3, channels=1)
    gray_val = make_dataset("synthetic", "val", size=SIZE, limit=N // 3, classes=3, channels=1)
    print(f"gray images {tuple(gray_train[0][0].shape)}, normalised with mean and std {normalisation(1)}")
    _, gray_history = train(gray_train, gray_val)
    gray_best = max(row["val_dice"] for row in gray_history)
    print(f"gray: best validation Dice, mean over the foreground classes: {gray_best:.4f} (colour: {best:.4f})")

# %% [markdown]
# From the command line the same runs are
#
#     minunet train --data synthetic --classes 3 --out runs/three
#     minunet train --data synthetic --classes 3 --channels 1 --out runs/three-gray
#     minunet evaluate --checkpoint runs/three/best.pt --data synthetic --json scores.json  # per class, by name
#     minunet predict --checkpoint runs/three/best.pt --input photos/ --output masks/ --overlay
#
# and for a MedSegBench dataset, `minunet train --data wbc` (its npz is downloaded to ~/.medsegbench, or read
# from `--data-root DIR`). `predict` writes each mask as a palette PNG whose values are the class indices, and
# overlays in one colour per class with a legend; your own label maps train with `--data folder --classes K`.
#
# ## Exercises
#
# Answers: `tutorials/answers/10_several_classes.md`; the notebook runs them after its last cell. All three
# run in quick mode (`--quick`: seconds), so that your numbers can be checked against the answers.
#
# 1. **Sigmoid is a softmax of two.** *Quick mode.* Give the background the logit 0 and check, for a few
#    logits x, that `cross_entropy` of (0, x) equals `bce_with_logits(x)`, in its value and in its gradient
#    with respect to x.
# 2. **The recipe's losses for three classes.** *Quick mode.* What does each name of `minunet.losses.LOSSES`
#    train for three classes (`loss_name(name, 3)`), and what is its value on the logits and labels of "The
#    loss of several classes"? Check that `LOSSES["bce"]()` there is torch's cross-entropy.
# 3. **Reading the confusion matrix.** *Quick mode.* What do its row sums count, and its column sums? Check
#    the row sums against the validation masks, then compute the ink's Dice from the matrix alone: why is it
#    not the per-class Dice printed above?
