# %% [markdown]
# # 05 · Losses and metrics: Dice, Jaccard and BCE, by hand and in training
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
#   `out/05_per_image_dice.png`);
# - puts the usual argument for the Dice loss ("it keeps small lesions from being outweighed") to a test:
#   the same small U-Net trained with BCE alone, Dice alone and both, on synthetic lesions of many sizes,
#   and their Dice **drawn** per lesion-size bin (`out/05_loss_by_lesion_size.png`).
#
# Run with no arguments (synthetic lesions; the loss comparison trains 3 seeds x 10 epochs per loss,
# about 3 minutes on a 2-core CPU: bench/RESULTS.md), `--data-root DIR` (ISIC 2016 for the masks at hand
# and the per-image section; in a notebook, the environment variable `MINUNET_DATA_ROOT`; the loss
# comparison always trains on synthetic lesions) or `--quick` (smaller images, one seed, 2 epochs).
# `--epochs N` and `--seeds N` change the loss comparison. It ends with exercises; their answers are in
# `tutorials/answers/05_losses_and_metrics.md`.

# %%
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

from minunet import UNet
from minunet.data import make_dataset
from minunet.losses import BCEDiceLoss, DiceLoss, bce_with_logits, dice_coefficient
from minunet.metrics import confusion_counts, isic_metrics

parser = argparse.ArgumentParser(description="Tutorial 05: losses and metrics")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="smaller images, short runs: a smoke run in seconds")
parser.add_argument("--epochs", type=int, help="epochs of each loss-comparison run (default 10, 2 with --quick)")
parser.add_argument("--seeds", type=int, help="runs per loss, seeds 0, 1, ... (default 3, 1 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128
TRAIN_SIZE = 48 if args.quick else 64  # the loss comparison's image size
EPOCHS = args.epochs or (2 if args.quick else 10)
SEEDS = list(range(args.seeds or (1 if args.quick else 3)))
LIMIT = 24 if args.quick else None  # at most this many images per split of the masks at hand
# One CPU thread: the U-Nets trained here are tiny, and a second thread gains little (0.15 s per training
# step on two idle cores, 0.16 s on one), while on a busy machine threads waiting for each other's cores
# make these small operations many times slower (1.5 to 2.8 s per step measured on two shared cores).
torch.set_num_threads(1)
print(f"data: {DATA} for the masks at hand ({SIZE} x {SIZE} px"
      + (f", at most {LIMIT} per split" if LIMIT else "") + f"); the loss comparison on synthetic lesions at "
      f"{TRAIN_SIZE} px, {len(SEEDS)} seed(s) x {EPOCHS} epochs per loss")


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
# m = FP + FN, D = 2n / (2n + m) and J = n / (n + m), so J = D / (2 - D) and D = 2J / (1 + J).

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
# where there is no lesion scores 0, however few they are.

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
# 1.0, so log(1 - p) = log(0) = -infinity, and the loss of a confidently wrong pixel becomes infinite.
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
# default because, cross-validated on the ISIC images at hand, it paid for the ResNet-34 U-Net (+0.0040 +-
# 0.0021 held-out Dice over 749 images), not because it is better in general: for the U-Net (width 32, one
# fold of 375 images) it changed nothing measurable (-0.0002 +- 0.0015). Both in bench/RESULTS.md, with
# their commands. The usual argument for the sum: BCE gives every pixel a smooth, well-scaled gradient from
# the first step; Dice looks at the whole mask, so a small lesion is not outweighed by its large background
# of easy skin pixels. The last part of this tutorial puts the second half of that argument to a test.

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
# ## The argument for the Dice loss
#
# BCE is a mean over pixels. A model that is unsure everywhere (probability 0.05 of lesion on every pixel)
# pays for each lesion pixel it misses, and a small lesion has few pixels: on the small lesion's image its
# BCE is small, on the large lesion's image large. The Dice loss of an image is about the overlap, so the
# same timid prediction costs nearly the full loss of 1 on both images. So, the argument goes, under BCE
# the small lesions are "outweighed" in the batch's loss and learned late or poorly, and Dice prevents it.

# %%
timid = torch.full_like(targets, math.log(0.05 / 0.95))  # logits: probability 0.05 on every pixel
for i, name in enumerate(("large lesion", "small lesion")):
    one_logits, one_mask = timid[i:i + 1], targets[i:i + 1]  # (1, 1, S, S): one image
    print(f"{name} ({int(one_mask.sum())} px): BCE {bce_with_logits(one_logits, one_mask).item():.3f}, "
          f"Dice loss {DiceLoss()(one_logits, one_mask).item():.3f}")

# %% [markdown]
# ## The argument, tested
#
# Does it matter in training? The same small U-Net (width 8) is trained on 64 x 64 synthetic lesions
# (48 x 48 with `--quick`) three times, once per loss: BCE alone, Dice alone (`DiceLoss`), and both
# (`BCEDiceLoss`). How small the synthetic lesions get is printed below (compare the masks at hand, above),
# so there are small ones to lose. Each run starts from the same initial weights for a given seed, sees the
# same batches in the same order, and uses Adam at learning rate 1e-3 with no augmentation; only the loss
# differs. The loop is written out (tutorial 06 explains each line). The models are then scored with the
# ISIC Dice on the 100 synthetic validation and test images, which are grouped by the share of the image
# their true lesion covers.
#
# One short run per loss is an illustration, not proof: runs this short vary a lot from seed to seed.
# Without `--quick` each loss is trained with 3 seeds, and the figure shows every seed's result as a dot.

# %%
def stacked(split, size=TRAIN_SIZE):
    """A synthetic split as two tensors: images (N, 3, S, S) normalised, masks (N, 1, S, S) in {0, 1}."""
    items = make_dataset("synthetic", split, size=size)
    return torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items])


def train(loss_fn, images, masks, epochs, seed, batch_size=16, lr=1e-3):
    """A UNet(base_channels=8) trained with Adam on loss_fn; initial weights and batch order set by seed."""
    torch.manual_seed(seed)
    model = UNet(base_channels=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order_generator = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=order_generator)
        for first in range(0, len(images), batch_size):
            batch = order[first:first + batch_size]
            loss = loss_fn(model(images[batch]), masks[batch])  # forward, then the loss
            optimizer.zero_grad()
            loss.backward()  # the gradient of the loss for every weight
            optimizer.step()  # move each weight a little against its gradient
    return model.eval()


LOSSES = {"BCE": bce_with_logits, "Dice": DiceLoss(), "BCE + Dice": BCEDiceLoss()}
EDGES = (0.0, 0.05, 0.10, 0.20, 1.0)  # bins of the true lesion's share of the image
train_images, train_masks = stacked("train")  # (200, 3, T, T), (200, 1, T, T); T = TRAIN_SIZE
eval_images, eval_masks = (torch.cat(pair) for pair in zip(stacked("val"), stacked("test")))  # 100 images
share = eval_masks.flatten(1).mean(dim=1)  # (100,) lesion share of each image
train_share = train_masks.flatten(1).mean(dim=1)  # (200,)
print(f"synthetic lesions at {TRAIN_SIZE} px: {train_share.min():.1%} to {train_share.max():.1%} of the image in "
      f"training, {share.min():.1%} to {share.max():.1%} in the 100 scored images (the smallest: "
      f"{int(eval_masks.flatten(1).sum(dim=1).min())} pixels)")
bins = [(share >= low) & (share < high) for low, high in zip(EDGES, EDGES[1:])]  # one (100,) bool per bin
labels = [f"{100 * low:.0f}-{100 * high:.0f} %\n({int(b.sum())} images)" for low, high, b in
          zip(EDGES, EDGES[1:], bins)]
results = {name: [] for name in LOSSES}  # loss name -> one list of per-bin mean Dice per seed
start = time.perf_counter()
for seed in SEEDS:
    for name, loss_fn in LOSSES.items():
        model = train(loss_fn, train_images, train_masks, EPOCHS, seed)
        with torch.no_grad():
            dice = isic_metrics(torch.sigmoid(model(eval_images)), eval_masks)["dice"]  # (100,)
        results[name].append([dice[b].mean().item() for b in bins])
        print(f"seed {seed}, {name:10s}: Dice {dice.mean():.3f}; per bin (smallest lesions first) "
              + " ".join(f"{v:.3f}" for v in results[name][-1]))
print(f"{len(SEEDS) * len(LOSSES)} runs of {EPOCHS} epochs in {time.perf_counter() - start:.0f} s")

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(8, 4.2))
width = 0.8 / len(LOSSES)
for k, (name, per_seed) in enumerate(results.items()):
    xs = [b + (k - (len(LOSSES) - 1) / 2) * width for b in range(len(bins))]
    means = [sum(run[b] for run in per_seed) / len(per_seed) for b in range(len(bins))]
    ax.bar(xs, means, width * 0.95, label=name)
    for run in per_seed:  # every seed's value, so the spread is seen
        ax.plot(xs, run, "k.", markersize=5)
ax.set_xticks(range(len(bins)), labels)
ax.set(xlabel="true lesion area, share of the image", ylabel="mean Dice (ISIC, per image)", ylim=(0, 1.13),
       yticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
       title=f"UNet(8) on {TRAIN_SIZE} px synthetic lesions: {EPOCHS} epochs, {len(SEEDS)} seed(s) per loss (dots)")
ax.legend(loc="upper center", ncol=len(LOSSES), frameon=False)
ax.grid(axis="y", alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "05_loss_by_lesion_size.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "05_loss_by_lesion_size.png"))

# %% [markdown]
# What did this run show? The lines below are written from its numbers: the order of the three losses on
# the smallest lesions, which loss was best for how many seeds, whether the argument's prediction (the
# losses with a Dice term ahead of BCE alone on small lesions) held, and how far apart the runs were on the
# largest lesions. bench/RESULTS.md records one full run's numbers (3 seeds x 10 epochs), and the quick one's.

# %%
smallest = {name: [run[0] for run in per_seed] for name, per_seed in results.items()}  # first bin, per seed
means = {name: sum(values) / len(values) for name, values in smallest.items()}
print(f"on the smallest lesions ({labels[0].split(chr(10))[0]}), mean Dice, best first:")
for name in sorted(means, key=means.get, reverse=True):
    print(f"  {name:10s} {means[name]:.3f} (seeds: {', '.join(f'{v:.3f}' for v in smallest[name])})")
best = [max(LOSSES, key=lambda name: smallest[name][k]) for k in range(len(SEEDS))]
print("best on the smallest lesions, seed by seed: "
      + ", ".join(f"{name} for {best.count(name)} of {len(SEEDS)}" for name in LOSSES if best.count(name)))
held = means["Dice"] > means["BCE"] and means["BCE + Dice"] > means["BCE"]
print(f"the argument's prediction {'held' if held else 'did not hold'} here: BCE alone {means['BCE']:.3f}, "
      f"Dice alone {means['Dice']:.3f}, BCE + Dice {means['BCE + Dice']:.3f}")
spread = {name: max(values) - min(values) for name, values in smallest.items()}
if len(SEEDS) > 1:
    print(f"widest spread over seeds on the smallest lesions: {max(spread, key=spread.get)} "
          f"({spread[max(spread, key=spread.get)]:.3f} between its best and worst seed)")
largest = [run[-1] for per_seed in results.values() for run in per_seed]
print(f"on the largest lesions ({labels[-1].split(chr(10))[0]}) all {len(largest)} runs scored "
      f"{min(largest):.3f} to {max(largest):.3f}")

# %% [markdown]
# What this does and does not show, whatever the lines above say. It does not show that a loss helps or
# hurts small lesions in general: these lesions are drawn with a clear contrast to the skin and are never
# tiny (their smallest size is printed above), the runs are short, and three seeds are few. The timid
# model above is still a true picture of how BCE weighs small lesions; it does not say what training does
# with that weighting. It does show that "the Dice loss keeps small lesions from being outweighed" is a
# claim to test on your data, not a fact to assume; note also that the Dice loss of an image is a ratio of
# small sums when its lesion is small, which can make it unsteady. Nor do these runs say which loss to train
# ISIC with: that was measured on ISIC itself (BCE + Jaccard against BCE + Dice, above; BCE alone was not
# cross-validated there). Your numbers can differ a little with another PyTorch version or thread count.
#
# ## Exercises
#
# Answers: `tutorials/answers/05_losses_and_metrics.md`.
#
# 1. **Smaller lesions.** Add a bin edge at 0.02 (`EDGES = (0.0, 0.02, 0.05, 0.10, 0.20, 1.0)`). How many of
#    the 100 scored images fall in the new bin? Run with `--seeds 5`: why do its dots spread more from seed
#    to seed than any other bin's?
# 2. **Weigh the two terms.** Add `"BCE + 0.2 Dice": BCEDiceLoss(dice_weight=0.2)` to `LOSSES`. If the Dice
#    term is what costs the small lesions here, where should the new loss land on them, against BCE alone
#    and BCE + Dice?
# 3. **Mean Jaccard from mean Dice.** Give image 2 of the two-image example a perfect prediction too
#    (`pred_b = truth_ab`): do the converted mean Dice and the mean Jaccard agree now? Then make both images
#    half right (`pred_a = pred_b`, the half-right one) and check again. When does converting a mean work?
#
# Next, tutorial 06: all the pieces together, training a U-Net.
