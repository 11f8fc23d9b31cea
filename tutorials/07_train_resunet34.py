# %% [markdown]
# # 07 · The ResNet-34 U-Net, and what a comparison of two models can conclude
#
# `minunet.ResNet34UNet` puts the ResNet-34 encoder of tutorial 04 under a U-Net decoder. This tutorial
# **prints** a tensor's shape through the decoder, then
#
# - trains it and tutorial 06's U-Net with the same recipe, three seeds each (one with `--quick`), and **prints**
#   each run's validation Dice, each model's mean and spread, how far its best epoch lies above its last, and
#   what the comparison can conclude;
# - **draws** every run's validation Dice, epoch by epoch (`out/07_compare_dice.png`).
#
# Its encoder starts from random weights here; tutorial 07b pretrains it and fine-tunes from there.
#
# **How long it takes.** Each run prints its seconds. `--quick`: 06's quick recipe, one seed per model (`--seeds
# 2` for a spread). Without it: 3 seeds x 2 models of 10 epochs each (on ISIC half of 06's 20), about 40
# minutes on ISIC on a shared 2-core CPU (from the notebook's own seconds: tutorials/README.md). Also `--seeds N`,
# `--epochs N`.

# %%
import argparse
import csv
import math
import os
import sys
import time

import matplotlib
import torch

from minunet import ResNet34UNet, UNet
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.cli.rundir import RunFolder
from minunet.data import make_dataset
from minunet.evaluation import evaluate
from minunet.recipe import Recipe
from minunet.training import fit

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

parser = argparse.ArgumentParser(description="Tutorial 07: the ResNet-34 U-Net, compared with the U-Net")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="06's quick recipe, one seed: a smoke run")
parser.add_argument("--epochs", type=int, help="epochs (default 10, 3 with --quick)")
parser.add_argument("--seeds", type=int, help="seeds per model (default 3, 1 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where figures and runs go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE, BATCH = (32, 32) if args.quick else (128, 16)  # as tutorial 06
EPOCHS = args.epochs or (3 if args.quick else 10)  # 10 on ISIC too, not 06's 20: up to nine runs here
SEEDS = list(range(args.seeds or (1 if args.quick else 3)))  # 07b fine-tunes a pretrained encoder with each too
MODE = f"{DATA}" + ("_quick" if args.quick else "")
if args.quick:  # tiny tensors: one thread beats several, which mostly wait for each other (by far on a busy machine)
    torch.set_num_threads(1)


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# %% [markdown]
# ## The model, and its decoder
#
# The encoder gives five maps, at 1/2 to 1/32 of the input (tutorial 04). Each `DecoderBlock` doubles what
# comes up (nearest-neighbour, to the skip's exact size), concatenates the encoder's map of that size and
# mixes them with two 3x3 conv-BatchNorm-ReLU layers; the last reaches full size with no skip, and `head`
# gives one logit per pixel. The widths (256 ... 16) are segmentation_models_pytorch's `Unet("resnet34")`'s.

# %%
torch.manual_seed(0)
model = ResNet34UNet().eval()
print(f"ResNet34UNet: {n_params(model):,d} parameters, {n_params(model.encoder):,d} of them in the encoder")
x = torch.randn(1, 3, 128, 128)
with torch.no_grad():
    *skips, d = model.encoder(x)  # f1 to f4 (1/2 to 1/16), and f5 (1/32) at the bottom
    print(f"input {tuple(x.shape)}; encoder bottom f5 {tuple(d.shape)}")
    for k, skip in enumerate([*skips[::-1], None]):  # f4, f3, f2, f1, then no skip at full size
        size = x.shape[2:] if skip is None else skip.shape[2:]
        d = model.decoder[k](d, size, skip)
        joined = "no skip" if skip is None else f"+ f{4 - k} {tuple(skip.shape)}"
        print(f"decoder[{k}]: up to {tuple(size)}, {joined} -> {tuple(d.shape)}")
    print(f"head: -> {tuple(model.head(d).shape)} logits")

# %% [markdown]
# ## Training both, seed by seed
#
# Same data and recipe as tutorial 06; only the model differs (its encoder starts from random weights). The
# *seed* decides the initial weights, the batch order and every augmentation, so scores vary by seed: a model
# difference smaller than that spread is no evidence. Runs go to `out/07_<model>_seed<s>_<data>[_quick]/` (the
# U-Net's seed 0: 06's run, if of as many epochs); a run already there is read back, not repeated.

# %%
val_set = make_dataset(DATA, "val", root=args.data_root, size=SIZE)


def finished(folder):
    """The history in folder/history.csv (a dict of numbers per epoch) if it holds a run of EPOCHS epochs."""
    if not os.path.exists(os.path.join(folder, "best.pt")):
        return None
    with open(os.path.join(folder, "history.csv")) as f:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return history if len(history) == EPOCHS else None


def run_dir(name, seed):
    """Where run (name, seed) goes: tutorial 06's folder for the U-Net's seed 0 if 06 ran as many epochs."""
    sixth = os.path.join(OUT, f"06_unet_{MODE}")  # where tutorial 06 leaves its run
    own = os.path.join(OUT, f"07_{name}_seed{seed}_{MODE}")  # never over 06's run of another length
    return sixth if (name, seed) == ("unet", 0) and finished(sixth) else own


def train_or_reuse(name, seed, make_model):
    """The history of model `name`'s run with `seed` (make_model() builds it), trained unless already there."""
    folder = run_dir(name, seed)
    if finished(folder):
        print(f"{name} seed {seed}: reusing {os.path.relpath(folder)}")
        return finished(folder)
    train_set = make_dataset(DATA, "train", root=args.data_root, size=SIZE, augment=True, seed=seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    history = fit(make_model(), train_set, val_set, Recipe(epochs=EPOCHS, batch_size=BATCH, seed=seed),
                  on_epoch=RunFolder(folder), log=None)
    print(f"{name} seed {seed}: {EPOCHS} epoch(s) on {len(train_set)} images in {time.perf_counter() - start:.0f} s, "
          f"best validation Dice {max(r['val_dice'] for r in history):.4f}")
    return history


histories = {}
for name, make_model in (("unet", lambda: UNet(base_channels=Recipe().base_channels)), ("resunet34", ResNet34UNet)):
    for seed in SEEDS:
        histories[name, seed] = train_or_reuse(name, seed, make_model)

# %% [markdown]
# ## What the validation score is, and is not; mean and spread over seeds
#
# `best.pt`'s epoch was *chosen* on these images: the best of several noisy scores is higher, on average, than
# what the same weights score on new ones. That optimism shows only on images that played no part in the
# choice: tutorial 08 scores such images, where it shows together with the change of collection. Best minus last epoch does not measure it, nor bound it: the best epoch's Dice
# is at least the last's by construction, so the difference is never negative, and it shows only how far the
# last epoch fell short of the best. And the split is small (50 synthetic images, 75 of ISIC's): even a fixed
# model's score has a sampling error (the per-image Dice's standard deviation over sqrt(images)). Then each
# model's best-epoch Dice over the seeds (mean, range), its mean best minus last epoch, and a sentence that says
# only what they allow.

# %%
results = {}


def tabulate(name, seed):
    """Record run (name, seed)'s validation Dice after its first, best and last epochs; print its row."""
    hist = histories[name, seed]
    best = max(hist, key=lambda r: r["val_dice"])
    results[name, seed] = dict(first=hist[0]["val_dice"], best=best["val_dice"], last=hist[-1]["val_dice"], hist=hist)
    print(f"{name:18s} {seed:4d} {int(best['epoch']):10d} {best['val_dice']:20.4f} {hist[-1]['val_dice']:20.4f}")


print(f"{'model':18s} {'seed':>4s} {'best epoch':>10s} {'val Dice, best epoch':>20s} {'val Dice, last epoch':>20s}")
for name, seed in histories:
    tabulate(name, seed)
dice = evaluate(model_from_checkpoint(load_checkpoint(os.path.join(run_dir("unet", 0), "best.pt"))),
                val_set)["per_image"]["dice"]  # (N,) the U-Net seed 0's Dice on each validation image
print(f"the standard error of a mean Dice over these {len(dice)} images: about {(dice.std() / len(dice) ** 0.5):.4f} "
      f"(from the U-Net seed 0's per-image Dice)")
summary = {}
for name in ("unet", "resunet34"):
    best_scores = [results[name, s]["best"] for s in SEEDS]
    best_minus_last = [results[name, s]["best"] - results[name, s]["last"] for s in SEEDS]
    summary[name] = (sum(best_scores) / len(SEEDS), min(best_scores), max(best_scores))
    seconds = [r["train_seconds"] for s in SEEDS for r in results[name, s]["hist"]]
    print(f"{name:10s} best-epoch val Dice: mean {summary[name][0]:.4f}, range {summary[name][1]:.4f} to "
          f"{summary[name][2]:.4f} over {len(SEEDS)} seed(s); best minus last epoch: mean "
          f"{sum(best_minus_last) / len(SEEDS):+.4f}; {sum(seconds) / len(seconds):.1f} s of training an epoch")
(mu_a, lo_a, hi_a), (mu_b, lo_b, hi_b) = summary["unet"], summary["resunet34"]
if len(SEEDS) < 2:
    print("One seed per model: no spread to compare a difference with; these runs cannot rank the models "
          "(--seeds 2 or more gives a spread).")
elif lo_a <= hi_b and lo_b <= hi_a:
    print(f"The ranges overlap: the difference of the means ({mu_b - mu_a:+.4f}) is within the spread "
          f"over seeds, so these runs cannot tell which model is better here.")
else:
    winner = "resunet34" if mu_b > mu_a else "unet"
    n = len(SEEDS)  # two equal models' n scores each fall apart, all of one above all of the other, this often:
    chance = 2 * math.factorial(n) ** 2 / math.factorial(2 * n)  # 1 in 3 for 2 seeds, 1 in 10 for 3, 1 in 35 for 4
    print(f"The ranges do not overlap: {winner} scored higher with every seed, on these validation images "
          f"(whose best epochs were chosen on them; tutorial 08 scores held-out images). But with {n} seeds "
          f"each, two equal models' ranges fail to overlap {chance:.0%} of the time by chance: "
          + ("no evidence yet; more seeds, or cross-validation folds (bench/accuracy.py --folds), would tell."
             if chance >= 0.05 else "unlikely by chance alone, on these images."))

# %%
COLOURS = {"unet": "tab:blue", "resunet34": "tab:orange"}
fig, ax = plt.subplots(figsize=(7, 3.6))
for (name, seed), r in results.items():
    ax.plot([h["epoch"] for h in r["hist"]], [h["val_dice"] for h in r["hist"]], "o-", color=COLOURS[name],
            alpha=0.7, markersize=3, label=name if seed == SEEDS[0] else None)
ax.set(xlabel="epoch", ylabel="validation Dice", ylim=(0, 1),
       title=f"every run, {len(SEEDS)} seed(s) per model ({DATA})")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "07_compare_dice.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "07_compare_dice.png"))

# %% [markdown]
# From the command line: `minunet train --model resunet34 --encoder-weights none --seed 1 --data synthetic
# --epochs 10 --out runs/resunet34-seed1`. Next, tutorial 07b: the same U-Net from a pretrained encoder.
#
# ## Exercises
#
# Answers: `tutorials/answers/07_train_resunet34.md`; the notebook runs them after its last cell. Each
# exercise names its mode: *quick* is a `--quick` run on synthetic lesions (seconds), *full* the run without
# it.
#
# 1. **Where the parameters are.** *Quick mode.* Count the parameters of each encoder stage and each decoder
#    block of `model`. Which part holds most of the 24 million, and what does that mean for a training step at
#    32 px?
# 2. **How often equal models look different.** *Quick mode.* The tutorial says two equal models' ranges
#    over n seeds fail to overlap 2 (n!)^2 / (2n)! of the time. Check it by simulation: draw 2n scores from one
#    distribution many times, give n to each "model", and count how often all of one lie above all of the
#    other, for n = 2, 3 and 4.
