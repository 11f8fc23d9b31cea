# %% [markdown]
# # 05 · Losses and metrics: Dice, Jaccard and BCE, by hand
#
# A *loss* is what training minimises: it must be smooth, so that a small change of the weights changes it
# a little and its gradient says which way to go. A *metric* is how a result is judged: it may be blunt
# (count pixels), but it must mean what we care about. For lesion masks we care about *overlap*: how much
# of the true lesion the prediction covers, and how little it strays outside.
#
# This tutorial computes, by hand on masks small enough to print, the ISIC challenge's metrics
# (`minunet.metrics.isic_metrics`: Dice, Jaccard, accuracy, sensitivity, specificity) and the training loss
# (`minunet.losses`: binary cross-entropy and soft Dice), and **prints** each next to minunet's result. It
# shows what happens when a mask is empty, why the stable form of BCE is needed, and why Dice is computed
# per image and then averaged, with a **figure** of that last case (`out/05_per_image_dice.png`).
#
# Run with no arguments (synthetic lesions), `--data-root DIR` (ISIC 2016) or `--quick` (smaller images).

# %%
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

from minunet.data import make_dataset
from minunet.losses import BCEDiceLoss, DiceLoss, bce_with_logits, dice_coefficient
from minunet.metrics import confusion_counts, isic_metrics

parser = argparse.ArgumentParser(description="Tutorial 05: losses and metrics")
parser.add_argument("--data-root", metavar="DIR",
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="smaller images: a smoke run in seconds")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


def as_batch(rows):
    """A mask written as a list of rows of 0s and 1s -> a (1, 1, H, W) float tensor (a batch of one)."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


# %% [markdown]
# ## Counting pixels
#
# Put a predicted mask over the true one and every pixel falls in one of four boxes: **TP** (true positive:
# lesion, and predicted lesion), **FP** (false positive: skin predicted as lesion), **FN** (false negative:
# lesion missed), **TN** (true negative: skin, predicted skin). Every ISIC metric is a ratio of these
# counts, computed for each image:
#
# - Dice = 2 TP / (2 TP + FP + FN): the overlap, relative to the two masks' sizes. 1 is perfect, 0 no overlap.
# - Jaccard (intersection over union, IoU) = TP / (TP + FP + FN); it is always <= Dice.
# - sensitivity = TP / (TP + FN): the share of the lesion found. specificity = TN / (TN + FP): the share of
#   the skin left alone. accuracy = (TP + TN) / all pixels.

# %%
target = [[0, 0, 0, 0, 0],
          [0, 1, 1, 1, 0],
          [0, 1, 1, 1, 0],
          [0, 1, 1, 0, 0],
          [0, 0, 0, 0, 0]]
pred = [[0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1],
        [0, 1, 1, 1, 1],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0]]
print("target     prediction")
for t_row, p_row in zip(target, pred):
    print(" ".join(map(str, t_row)), "  ", " ".join(map(str, p_row)))

pairs = [(t, p) for t_row, p_row in zip(target, pred) for t, p in zip(t_row, p_row)]
tp = sum(t == 1 and p == 1 for t, p in pairs)
fp = sum(t == 0 and p == 1 for t, p in pairs)
fn = sum(t == 1 and p == 0 for t, p in pairs)
tn = sum(t == 0 and p == 0 for t, p in pairs)
print(f"by hand:   TP {tp}, FP {fp}, FN {fn}, TN {tn}")
by_hand = {"dice": 2 * tp / (2 * tp + fp + fn), "jaccard": tp / (tp + fp + fn), "sensitivity": tp / (tp + fn),
           "specificity": tn / (tn + fp), "accuracy": (tp + tn) / len(pairs)}
counts = confusion_counts(as_batch(pred), as_batch(target))  # each a tensor of shape (B,) = (1,)
print(f"minunet:   TP {counts[0].item()}, FP {counts[1].item()}, FN {counts[2].item()}, TN {counts[3].item()}")
scores = isic_metrics(as_batch(pred), as_batch(target))  # dict of (B,) tensors
for name, value in by_hand.items():
    print(f"  {name:12s} by hand {value:.4f}   isic_metrics {scores[name].item():.4f}")
    assert abs(value - scores[name].item()) < 1e-6

# %% [markdown]
# The challenge ranked by Jaccard, and also reported a *thresholded* Jaccard: an image whose Jaccard is
# below 0.65 counts as 0, a failure, because a border that far off is clinically useless. Dice and Jaccard
# carry the same information (J = D / (2 - D)), on different scales:

# %%
for d in (0.5, 0.79, 0.85, 0.9, 0.95):
    print(f"Dice {d:.2f} <-> Jaccard {d / (2 - d):.3f}")
print(f"threshold_jaccard of the example: {scores['threshold_jaccard'].item():.4f} "
      f"(its Jaccard {scores['jaccard'].item():.4f} is below 0.65)")

# %% [markdown]
# ## Empty masks
#
# Some images may hold no lesion, and a model may predict none. Then a ratio's denominator can be 0:
# with no lesion and no prediction, Dice is 0 / 0. The challenge's convention, which `isic_metrics` follows:
# a metric whose denominator is 0 is 1.0 (nothing to find and nothing wrongly found is a perfect answer).
# A prediction of a few pixels where there is no lesion scores 0, however few they are.

# %%
empty = [[0] * 4 for _ in range(4)]
speck = [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
lesion = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
for name, p, t in [("no lesion, none predicted", empty, empty), ("no lesion, 1 px predicted", speck, empty),
                   ("lesion, none predicted", empty, lesion)]:
    s = isic_metrics(as_batch(p), as_batch(t))
    print(f"{name:27s} " + ", ".join(f"{k} {s[k].item():.2f}" for k in ("dice", "jaccard", "sensitivity",
                                                                       "specificity")))

# %% [markdown]
# ## The soft Dice loss
#
# Counting pixels after a threshold has no useful gradient: nudging a weight changes no count. The *soft*
# Dice puts the model's probabilities p (sigmoid of its logits) where the 0/1 prediction was:
# Dice = (2 sum(p t) + s) / (sum(p) + sum(t) + s), and the loss is 1 - Dice. The small constant s
# ("smooth", 1 by default) keeps it defined on empty masks (0 + 1) / (0 + 1) = 1, and softens it on tiny
# ones. Without it, two empty masks give 0 / 0, "not a number", and one NaN poisons the whole training.

# %%
probs = torch.tensor([[0.9, 0.8, 0.1], [0.6, 0.2, 0.0]])[None, None]  # (1, 1, 2, 3)
truth = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])[None, None]
p, t = probs.flatten().tolist(), truth.flatten().tolist()
inter = sum(a * b for a, b in zip(p, t))
dice_by_hand = (2 * inter + 1) / (sum(p) + sum(t) + 1)
print(f"soft Dice by hand: (2 x {inter:.2f} + 1) / ({sum(p):.2f} + {sum(t):.0f} + 1) = {dice_by_hand:.4f}; "
      f"dice_coefficient: {dice_coefficient(probs, truth).item():.4f}")
nothing = torch.zeros(1, 1, 4, 4)
print(f"two empty masks: smooth=1 gives {dice_coefficient(nothing, nothing).item():.1f}, "
      f"smooth=0 gives {dice_coefficient(nothing, nothing, smooth=0).item()}")

# %% [markdown]
# ## Binary cross-entropy, and why it is written the way it is
#
# BCE scores each pixel on its own: with p = sigmoid(x) the predicted probability for logit x and y the
# true label, the loss is -[y log p + (1 - y) log(1 - p)]: near 0 when p is confidently right, large when
# confidently wrong. Averaged over all pixels, it gives every pixel a well-scaled gradient (p - y).
#
# Written literally, it breaks: a network computes in float32 (or less), where sigmoid(20) rounds to exactly
# 1.0, so log(1 - p) = log(0) = -infinity, and the loss of a confidently wrong pixel becomes infinite. `bce_with_logits` uses the same quantity rearranged, max(x, 0) - x y + log(1 + exp(-|x|)),
# which never takes the log of 0 and equals PyTorch's `binary_cross_entropy_with_logits`.

# %%
logits = torch.tensor([2.0, -1.0, 0.5, 20.0, -30.0])[None, None, None]  # (1, 1, 1, 5)
labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])[None, None, None]
per_pixel = []
for x, y in zip(logits.flatten().tolist(), labels.flatten().tolist()):
    p = 1 / (1 + math.exp(-x))  # Python floats are float64: sigmoid(x) only rounds to 1 above x = 37
    per_pixel.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
print(f"by hand (float64):        {[round(v, 4) for v in per_pixel]}, mean {sum(per_pixel) / len(per_pixel):.4f}")
naive = -(labels * torch.log(torch.sigmoid(logits)) + (1 - labels) * torch.log(1 - torch.sigmoid(logits)))
print(f"literal formula, float32: {[round(v, 4) for v in naive.flatten().tolist()]}, mean {naive.mean().item()}")
print(f"bce_with_logits:          mean {bce_with_logits(logits, labels).item():.4f}")
print(f"torch's own:              mean {F.binary_cross_entropy_with_logits(logits, labels).item():.4f}")

# %% [markdown]
# minunet trains with `BCEDiceLoss`: BCE + soft Dice on the logits. BCE gives smooth per-pixel gradients
# from the first step; Dice looks at the whole mask, so a small lesion is not outweighed by its large
# background of easy skin pixels.

# %%
loss_logits = torch.tensor([[4.0, 3.0, -2.0], [1.0, -1.0, -5.0]])[None, None]  # (1, 1, 2, 3)
print(f"DiceLoss {DiceLoss()(loss_logits, truth).item():.4f} + BCE {bce_with_logits(loss_logits, truth).item():.4f}"
      f" = BCEDiceLoss {BCEDiceLoss()(loss_logits, truth).item():.4f}")

# %% [markdown]
# ## Why Dice per image
#
# Take two real masks: the largest lesion of the validation split and the smallest. Suppose a model finds
# the large one perfectly and misses the small one entirely. Pool all pixels of both images into one Dice,
# and the large lesion's many pixels swamp the miss: the score still looks excellent. Compute Dice for
# each image and average, as the ISIC challenge does, and the miss counts for exactly what it is: one of
# two patients. That is why `isic_metrics` and `dice_coefficient` work per image, and why pixel accuracy
# (also shown) says almost nothing here.

# %%
val = make_dataset(DATA, "val", root=args.data_root, size=SIZE)
areas = val.masks.flatten(1).sum(dim=1)  # (N,) lesion pixels per image
large, small = int(areas.argmax()), int(areas.argmin())
targets = torch.stack([val.masks[large], val.masks[small]]).float()  # (2, 1, S, S)
preds = torch.stack([val.masks[large], torch.zeros_like(val.masks[small])]).float()  # perfect, then nothing
per_image = isic_metrics(preds, targets)
tp_, fp_, fn_, _ = (c.sum() for c in confusion_counts(preds, targets))  # the two images' pixels pooled
pooled = (2 * tp_ / (2 * tp_ + fp_ + fn_)).item()
print(f"large lesion: {int(areas[large])} px, small lesion: {int(areas[small])} px (of {SIZE * SIZE})")
print(f"Dice per image: {[round(v, 3) for v in per_image['dice'].tolist()]}, mean {per_image['dice'].mean():.3f}")
print(f"Dice of the pooled pixels: {pooled:.3f}    pixel accuracy (mean): {per_image['accuracy'].mean():.3f}")

# %%
from minunet.plots import plot_cases  # noqa: E402  (image, true mask, prediction: one row per case)

plot_cases([val.images[large], val.images[small]], list(targets), list(preds),
           os.path.join(OUT, "05_per_image_dice.png"),
           titles=[f"Dice {d:.2f}" for d in per_image["dice"].tolist()])
show(os.path.join(OUT, "05_per_image_dice.png"))

# %% [markdown]
# Next, tutorial 06: all the pieces together, training a U-Net.
