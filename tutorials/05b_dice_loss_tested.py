# %% [markdown]
# # 05b · The Dice loss and small lesions: an argument, tested
#
# Tutorial 05 wrote the losses by hand. The usual argument for adding the Dice loss to BCE is that Dice
# "keeps small lesions from being outweighed" by the many easy skin pixels around them. This tutorial
#
# - **prints** what BCE and the Dice loss charge a timid model (probability 0.05 everywhere) on the largest
#   and the smallest lesion of the validation split;
# - trains the same small U-Net with BCE alone, Dice alone and both, on synthetic lesions of many sizes,
#   **prints** each run's Dice per lesion-size bin and **draws** them (`out/05b_loss_by_lesion_size.png`);
# - **prints** what the runs showed, in sentences written from their numbers, and what they cannot show.
#
# Run with no arguments (synthetic lesions; 3 seeds x 10 epochs per loss, about 3 minutes on a quiet 2-core CPU:
# bench/RESULTS.md; its notebook, made at one thread beside other work, took half an hour), `--data-root DIR` (ISIC 2016 for the two lesions of the first section; in a notebook,
# the environment variable `MINUNET_DATA_ROOT`; the comparison always trains on synthetic lesions) or
# `--quick` (smaller images, one seed, 3 epochs). `--epochs N` and `--seeds N` change the comparison. It
# ends with exercises; their answers are in `tutorials/answers/05b_dice_loss_tested.md`.

# %%
import argparse
import math
import os
import sys
import time

import torch

from minunet import UNet
from minunet.data import make_dataset
from minunet.losses import BCEDiceLoss, DiceLoss, bce_with_logits
from minunet.metrics import isic_metrics

parser = argparse.ArgumentParser(description="Tutorial 05b: the Dice loss and small lesions, tested")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="smaller images, short runs: a smoke run in seconds")
parser.add_argument("--epochs", type=int, help="epochs of each loss-comparison run (default 10, 3 with --quick)")
parser.add_argument("--seeds", type=int, help="runs per loss, seeds 0, 1, ... (default 3, 1 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128
TRAIN_SIZE = 48 if args.quick else 64  # the loss comparison's image size
EPOCHS = args.epochs or (3 if args.quick else 10)
SEEDS = list(range(args.seeds or (1 if args.quick else 3)))
LIMIT = 24 if args.quick else None  # at most this many validation images for the first section
# One CPU thread: the U-Nets trained here are tiny, and a second thread gains little (0.15 s per training
# step on two idle cores, 0.16 s on one), while on a busy machine threads waiting for each other's cores
# make these small operations many times slower (1.5 to 2.8 s per step measured on two shared cores).
torch.set_num_threads(1)
print(f"data: {DATA} for the two lesions ({SIZE} x {SIZE} px); the loss comparison on synthetic lesions at "
      f"{TRAIN_SIZE} px, {len(SEEDS)} seed(s) x {EPOCHS} epochs per loss")


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


# %% [markdown]
# ## Two lesions
#
# The largest and the smallest lesion of the validation split, as in tutorial 05's "Why Dice per image".

# %%
val = make_dataset(DATA, "val", root=args.data_root, size=SIZE, limit=LIMIT)
areas = val.masks.flatten(1).sum(dim=1)  # (N,) lesion pixels per image
large, small = int(areas.argmax()), int(areas.argmin())
targets = torch.stack([val.masks[large], val.masks[small]]).float()  # (2, 1, S, S)
print(f"large lesion: {int(areas[large])} px, small lesion: {int(areas[small])} px (of {SIZE * SIZE})")

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
# (48 x 48 with `--quick`) once per loss and seed: BCE alone, Dice alone (`DiceLoss`), and both
# (`BCEDiceLoss`). How small the synthetic lesions get is printed below (compare the masks at hand in
# tutorial 05), so there are small ones to lose. Each run starts from the same initial weights for a given
# seed, sees the same batches in the same order, and uses Adam at learning rate 1e-3 with no augmentation;
# only the loss differs. The loop is written out (tutorial 06 explains each line). The models are then scored with the
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
fig.savefig(os.path.join(OUT, "05b_loss_by_lesion_size.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "05b_loss_by_lesion_size.png"))

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
# ISIC with: that was measured on ISIC itself (BCE + Jaccard against BCE + Dice, tutorial 05; BCE alone was
# not cross-validated there). Your numbers can differ a little with another PyTorch version or thread count.
#
# ## Exercises
#
# Answers: `tutorials/answers/05b_dice_loss_tested.md`; the notebook runs them after its last cell. Each
# exercise names its mode: *quick* is a `--quick` run (seconds), *full* the run without it, as the notebook's.
#
# 1. **Smaller lesions.** *Quick mode.* Add a bin edge at 0.02 (`EDGES = (0.0, 0.02, 0.05, 0.10, 0.20, 1.0)`).
#    How many of the 100 scored images fall in the new bin? Run with `--quick --seeds 5`: why do its dots
#    spread more from seed to seed than any other bin's?
# 2. **Weigh the two terms.** *Full mode.* Add `"BCE + 0.2 Dice": BCEDiceLoss(dice_weight=0.2)` to `LOSSES`.
#    If the Dice term is what costs the small lesions here, where should the new loss land on them, against
#    BCE alone and BCE + Dice?
# 3. **An undecided model.** *Quick mode.* Replace the timid logits by zeros (probability 0.5 on every pixel).
#    What do BCE and the Dice loss charge it on each of the two lesions now? Which of the two losses sees the
#    lesion's size, and which way?
#
# Next, tutorial 06: all the pieces together, training a U-Net.
