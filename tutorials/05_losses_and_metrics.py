# %% [markdown]
# # 05 · Losses and metrics: Dice, Jaccard and BCE, by hand
#
# A *loss* is what training minimises: it must be smooth, so that a small change of the weights changes it
# a little and its gradient says which way to go. A *metric* is how a result is judged: it may be blunt
# (count pixels), but it must mean what we care about. For lesion masks we care about *overlap*: how much
# of the true lesion the prediction covers, and how little it strays outside.
#
# This tutorial
#
# - computes, by hand on masks small enough to print, the ISIC challenges' metrics
#   (`minunet.metrics.isic_metrics`: Dice, Jaccard, thresholded Jaccard, accuracy, sensitivity,
#   specificity) and the training losses (`minunet.losses`: binary cross-entropy and soft Dice), and
#   **prints** each next to minunet's result;
# - shows which metric each challenge ranked by, why J = D / (2 - D) converts one image's Dice to its
#   Jaccard but not a mean Dice to a mean Jaccard, how large the lesions at hand are and whether any mask is
#   empty, why the stable form of BCE is needed, and why Dice is computed per image (a **figure**:
#   `out/05_per_image_dice.png`).
#
# Tutorial 05b then puts the usual argument for the Dice loss to a test, by training.
#
# Run with no arguments (synthetic lesions, a few seconds), `--data-root DIR` (ISIC 2016 for the masks at
# hand and the per-image section; in a notebook, the environment variable `MINUNET_DATA_ROOT`) or `--quick`
# (smaller images, at most 24 per split). It ends with exercises; their answers are in
# `tutorials/answers/05_losses_and_metrics.md`.

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
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="smaller images, fewer of them: a smoke run")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128
LIMIT = 24 if args.quick else None  # at most this many images per split of the masks at hand
print(f"data: {DATA}, the masks at hand at {SIZE} x {SIZE} px" + (f", at most {LIMIT} per split" if LIMIT else ""))


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
# ## Which metric the challenges ranked by
#
# The ISIC 2016 challenge (Gutman et al. 2016, "Skin lesion analysis toward melanoma detection: a challenge
# at ISBI 2016", arXiv:1605.01397) reported accuracy, sensitivity, specificity, Dice and Jaccard for its
# segmentation task, and ranked by the **Jaccard index, computed per image and averaged** over the test
# images. The *thresholded* Jaccard came later: the ISIC 2018 challenge (Codella et al. 2019, "Skin lesion
# analysis toward melanoma detection 2018", arXiv:1902.03368) ranked by it: an image whose Jaccard is
# below 0.65 counts as 0, a failure, so a few failed images cost more than many good borders made a little
# better gain. minunet reports both (`jaccard`, `threshold_jaccard`).
#
# For one image, Dice and Jaccard carry the same information on different scales: with n = TP and
# m = FP + FN, D = 2n / (2n + m) and J = n / (n + m), so J = D / (2 - D) and D = 2J / (1 + J). (Dice 0.79
# is in the table because it is where Jaccard crosses 2018's failure line of 0.65.)

# %%
for d in (0.5, 0.75, 0.79, 0.85, 0.9, 0.95):
    print(f"Dice {d:.2f} <-> Jaccard {d / (2 - d):.3f}")
print(f"threshold_jaccard of the example: {scores['threshold_jaccard'].item():.4f} "
      f"(its Jaccard {scores['jaccard'].item():.4f} is below 0.65)")

# %% [markdown]
# That conversion holds for each image, **not for means**. Two images: the first segmented perfectly,
# the second half right (it finds 2 of the 4 lesion pixels and marks 2 skin pixels):

# %%
truth_ab = [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]  # the same 4-pixel lesion in both images
pred_a = truth_ab  # image 1: perfect
pred_b = [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]  # image 2: 2 of the 4 lesion pixels, and 2 skin pixels
two = isic_metrics(torch.cat([as_batch(pred_a), as_batch(pred_b)]),
                   torch.cat([as_batch(truth_ab), as_batch(truth_ab)]))  # each metric: (2,) one per image
for i, name in enumerate(("image 1", "image 2")):
    d, j = two["dice"][i].item(), two["jaccard"][i].item()
    assert abs(j - d / (2 - d)) < 1e-6  # per image, J = D / (2 - D) holds exactly
    print(f"{name}: Dice {d:.3f}, Jaccard {j:.3f} = {d:.3f} / (2 - {d:.3f})")
mean_dice, mean_jaccard = two["dice"].mean().item(), two["jaccard"].mean().item()
print(f"mean Dice {mean_dice:.3f}, converted: {mean_dice:.3f} / (2 - {mean_dice:.3f}) = "
      f"{mean_dice / (2 - mean_dice):.3f}")
print(f"mean Jaccard (what a challenge ranks by): {mean_jaccard:.3f}")

# %% [markdown]
# The curve J = D / (2 - D) bends upwards (it is convex), so the mean of the converted values is above the
# converted mean, unless every image has the same Dice. A mean Dice converted to Jaccard therefore only
# gives a lower bound of the mean Jaccard (and the mean Dice itself an upper bound, since J <= D for every
# image). To compare with a challenge's table, compute the mean Jaccard over the images; do not convert.

# %% [markdown]
# ## The masks at hand
#
# The rest of this tutorial works on real masks where it can. Without `--data-root` they are the synthetic
# lesions (200 training and 50 validation images, generated on the spot). With `--data-root
# ../shared/data/isic2016` they are the ISIC folder at hand, which is *not* the whole ISIC 2016 challenge
# (its README.md says so in full): 749 of the 900 training images of ISBI 2016 Part 1 (the other 151 could
# not be recovered offline), resized to 256 x 192 before they reached us, with the masks that ISIC 2017
# drew for the same images (close to the 2016 masks, not equal: a median Jaccard of about 0.85 between
# the two, per that README), and without the 379 test images. minunet splits the 749 into 674 training and
# 75 validation images. How large are their lesions, and is any mask empty?

# %%
train_at_hand = make_dataset(DATA, "train", root=args.data_root, size=SIZE, limit=LIMIT)
val = make_dataset(DATA, "val", root=args.data_root, size=SIZE, limit=LIMIT)
at_hand = torch.cat([train_at_hand.masks, val.masks])  # (N, 1, S, S) uint8
shares = at_hand.flatten(1).float().mean(dim=1)  # (N,) lesion share of each image
n_empty = int((shares == 0).sum())
print(f"{len(shares)} masks ({DATA}, train and val): the lesion covers {shares.min():.1%} to {shares.max():.1%} "
      f"of its image, median {shares.median():.1%}; {n_empty} mask(s) empty")

# %% [markdown]
# ## Empty masks
#
# A mask may hold no lesion (the count printed above says whether any here does; your own data, or a crop
# of an image, may have some), and a model may predict none. Then a ratio's denominator can be 0: with no
# lesion and no prediction, Dice is 0 / 0. minunet's convention, the usual one: a metric whose denominator
# is 0 is 1.0 (nothing to find and nothing wrongly found is a perfect answer). A prediction of a few pixels
# where there is no lesion scores 0, however few they are. This is the ISIC challenge's rule for its one
# lesion class. With several classes (tutorial 10) minunet does otherwise, as nnU-Net and MONAI do: a class in
# neither the truth nor the prediction of an image is left out of that image's mean (NaN), since scoring it
# 1 would reward a model for each class an image happens to lack.

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
# 1.0, so log(1 - p) = log(0) = -infinity, and the loss of a confidently wrong skin pixel becomes infinite.
# (The other side survives: sigmoid(-30) is about 1e-13, still a float32 number, so a lesion pixel at logit
# -30 costs a finite -log(p) = 30; float32 loses p only near 1, where 1 - p is too small to hold.)
# `bce_with_logits` uses the same quantity rearranged, max(x, 0) - x y + log(1 + exp(-|x|)),
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
# `BCEDiceLoss` is BCE + soft Dice on the logits, weighted 1 and 1: minunet 0.1.0's training loss. Today's
# default is its twin `BCEJaccardLoss`, with the soft Jaccard in place of the soft Dice. It became the
# default with flip averaging, together, on a cross-validation on the ISIC images at hand, not because it
# is better in general. Alone, for the ResNet-34 U-Net, it gained +0.0040 +- 0.0021 held-out Dice over 749
# images: 1.9 standard errors, within the noise by the two-standard-error rule tutorials 07 and 08 use, so
# that run did not show it pays (three seeds later put it at -0.0001 +- 0.0010); for the U-Net (width 32,
# one fold of 375 images) it changed nothing measurable (-0.0002 +- 0.0015). All in bench/RESULTS.md, with
# their commands. The usual argument for the sum: BCE gives every pixel a smooth, well-scaled gradient from
# the first step; Dice looks at the whole mask, so a small lesion is not outweighed by its large background
# of easy skin pixels. Tutorial 05b puts the second half of that argument to a test.

# %%
loss_logits = torch.tensor([[4.0, 3.0, -2.0], [1.0, -1.0, -5.0]])[None, None]  # (1, 1, 2, 3)
print(f"DiceLoss {DiceLoss()(loss_logits, truth).item():.4f} + BCE {bce_with_logits(loss_logits, truth).item():.4f}"
      f" = BCEDiceLoss {BCEDiceLoss()(loss_logits, truth).item():.4f}")

# %% [markdown]
# ## Why Dice per image
#
# Take two masks at hand: the largest lesion of the validation split and the smallest. Suppose a model finds
# the large one perfectly and misses the small one entirely. Pool all pixels of both images into one Dice,
# and the large lesion's many pixels swamp the miss: the score still looks excellent. Compute Dice for
# each image and average, as the ISIC challenges score, and the miss counts for exactly what it is: one of
# two patients. That is why `isic_metrics` and `dice_coefficient` work per image, and why pixel accuracy
# (also shown) says almost nothing here.

# %%
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
# ## Exercises
#
# Answers: `tutorials/answers/05_losses_and_metrics.md`; the notebook runs them after its last cell. All three
# run in quick mode (`--quick`), which here prints the same as the full run.
#
# 1. **Mean Jaccard from mean Dice.** *Quick mode.* Give image 2 of the two-image example a perfect prediction
#    too (`pred_b = truth_ab`): do the converted mean Dice and the mean Jaccard agree now? Then make both
#    images half right (`pred_a = pred_b`, the half-right one) and check again. When does converting a mean
#    work?
# 2. **One pixel across the line.** *Quick mode.* In the 5 x 5 example of "Counting pixels", turn off one of
#    the two false positives of `pred`. What are Dice, Jaccard and the thresholded Jaccard now, and why did
#    `threshold_jaccard` jump while Dice moved by only 0.05?
# 3. **What `smooth` does to a tiny lesion.** *Quick mode.* A lesion of 1 pixel, and a model that predicts
#    probability 0 everywhere: what are the soft Dice coefficient and the Dice loss with `smooth=1`? With a
#    100-pixel lesion? What does that say about how the Dice loss treats the smallest lesions?
#
# Next, tutorial 05b: the usual argument for the Dice loss, tested by training.
