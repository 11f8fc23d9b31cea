# %% [markdown]
# # 07b · What a pretrained encoder buys
#
# Tutorial 07 trained the ResNet-34 U-Net with a random encoder. The usual start on small medical data sets
# is an encoder pretrained on many other images. This tutorial
#
# - *pretrains* the encoder offline on a task the library makes itself (sorting lesions into three sizes),
#   **prints** how well it learnt, and saves it as torchvision saves ImageNet's weights;
# - fine-tunes the U-Net from it with 07's seeds and **prints** each pair with 07's random start, whatever it
#   shows;
# - **draws** both starts' validation Dice, epoch by epoch (`out/07b_pretrained_dice.png`).
#
# **How long it takes.** Each run prints its seconds. It reuses 07's random-start runs from `out/` (run 07
# first; a missing one is trained here). `--quick`: 07's quick recipe, one seed. Without it: a classifier of
# 300 steps and 3 seeds of 10 epochs, about half an hour on ISIC on a shared 2-core CPU (the notebook's own
# seconds: tutorials/README.md). Also `--seeds N`, `--epochs N`, `--encoder-weights FILE`.

# %%
import argparse
import csv
import os
import sys
import time

import matplotlib
import torch
import torch.nn as nn
import torch.nn.functional as F

from minunet import ResNet34Encoder, ResNet34UNet
from minunet.cli.rundir import RunFolder
from minunet.data import LesionDataset, make_dataset
from minunet.data.synthetic import synthetic_lesion
from minunet.device import choose_device
from minunet.models.resnet import IMAGENET_WEIGHTS_FILE, IMAGENET_WEIGHTS_URL
from minunet.recipe import Recipe
from minunet.training import fit

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

parser = argparse.ArgumentParser(description="Tutorial 07b: what a pretrained encoder buys")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="07's quick recipe, one seed: a smoke run")
parser.add_argument("--epochs", type=int, help="epochs (default 10, 3 with --quick): 07's")
parser.add_argument("--seeds", type=int, help="seeds (default 3, 1 with --quick): 07's")
parser.add_argument("--encoder-weights", default="sizes", metavar="{sizes,imagenet,FILE}",
                    help="the pretrained encoder: this tutorial's size classifier (default), or torchvision's "
                    "ImageNet weights (downloaded, or a saved resnet34-b627a593.pth)")
parser.add_argument("--out", metavar="DIR", help="where figures and runs go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE, BATCH = (32, 32) if args.quick else (128, 16)  # as tutorials 06 and 07
EPOCHS = args.epochs or (3 if args.quick else 10)
SEEDS = list(range(args.seeds or (1 if args.quick else 3)))
MODE = f"{DATA}" + ("_quick" if args.quick else "")
PRETRAINED = "resunet34_" + {"sizes": "sizes", "imagenet": "imagenet"}.get(args.encoder_weights, "pretrained")
if args.quick:  # tiny tensors: one thread beats several, which mostly wait for each other (by far on a busy machine)
    torch.set_num_threads(1)


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


def pretrained_unet():
    """A ResNet34UNet whose encoder starts from weights_file (set below: the size classifier's, or ImageNet's)."""
    try:
        return ResNet34UNet(encoder_weights=weights_file)
    except (RuntimeError, OSError, ValueError) as err:  # offline "imagenet", a missing or wrong file
        sys.exit(f"cannot load the encoder weights: {err}")


weights_file = args.encoder_weights
if weights_file != "sizes":
    pretrained_unet()  # a file that cannot load stops the tutorial now, not after its first runs

# %% [markdown]
# ## Pretraining the encoder
#
# An encoder pretrained on ImageNet already responds to edges, textures and shapes. ImageNet's weights cannot
# be downloaded here, so the idea is shown on a task the library makes itself: sorting images by their
# lesion's size (smallest, middle or largest third), which needs the encoder to find the lesion. A size is a
# cheap label (one number per image, not per pixel), so there can be more of them: 2,000 fresh synthetic
# lesions, 512 with `--quick` (with `--data-root` too: does synthetic pretraining help on real lesions?).
#
# The classifier is the encoder, the mean of its last map, and a linear `fc` to 3 classes: torchvision's
# ResNet-34 shape. It is trained by 06's loop with cross-entropy and saved with torchvision's keys, so that
# `ResNet34UNet(encoder_weights=path)` loads it as it would the ImageNet file, ignoring `fc`.

# %%
N_PRETRAIN, STEPS = (512, 16) if args.quick else (2000, 300)


def sized_lesions(n, first_seed):
    """n fresh synthetic lesions, none of them in the splits, and their sizes: (images (n, 3, S, S)
    normalised, areas (n,): each lesion's share of its image)."""
    drawn = [synthetic_lesion(SIZE, torch.Generator().manual_seed(first_seed + i)) for i in range(n)]
    pool = LesionDataset(torch.stack([im for im, _ in drawn]), torch.stack([m for _, m in drawn]), [""] * n)
    images = torch.stack([pool[i][0] for i in range(len(pool))])  # (n, 3, S, S)
    areas = torch.stack([pool[i][1].mean() for i in range(len(pool))])  # (n,) lesion share of the image
    return images, areas


class SizeClassifier(nn.Module):
    """A ResNet-34 with a 3-way linear head: the encoder, the mean of its last map, `fc`."""

    def __init__(self):
        super().__init__()
        self.encoder, self.fc = ResNet34Encoder(), nn.Linear(512, 3)

    def forward(self, x):  # (B, 3, S, S)
        return self.fc(self.encoder(x)[-1].mean(dim=(2, 3)))  # (B, 512, S/32, S/32) -> (B, 512) -> (B, 3)


if args.encoder_weights == "sizes":
    start = time.perf_counter()
    images, areas = sized_lesions(N_PRETRAIN, 9_000_000)
    held_images, held_areas = sized_lesions(200, 9_900_000)  # others, to score the classifier on
    edges = areas.quantile(torch.tensor([1 / 3, 2 / 3]))  # the area between the thirds
    labels = torch.bucketize(areas, edges)  # (n,) 0 small, 1 middle, 2 large
    device, amp_dtype = choose_device("auto", "auto")  # as fit chooses them (tutorial 06)
    torch.manual_seed(0)
    classifier = SizeClassifier().to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(0)
    classifier.train()
    for step in range(STEPS):  # tutorial 06's loop, on random batches of 32
        batch = torch.randint(0, len(images), (32,), generator=order)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = classifier(images[batch].to(device))  # (32, 3): one score per size class
        loss = F.cross_entropy(logits.float(), labels[batch].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        guess = classifier.eval()(held_images.to(device)).argmax(1).cpu()  # (200,) the class of each lesion
    correct = (guess == torch.bucketize(held_areas, edges)).float().mean()
    error = (1 / 3 * 2 / 3 / len(held_images)) ** 0.5  # the standard error of a chance score over these lesions
    learnt = "above chance by more than two standard errors: it has learnt something of sizes" if \
        correct > 1 / 3 + 2 * error else f"within two standard errors of chance (one is {error:.0%}): not learnt yet"
    print(f"size classifier: {STEPS} steps on {len(images)} images in {time.perf_counter() - start:.0f} s; "
          f"{correct:.0%} of {len(held_images)} other lesions sorted right (chance: 33 %): {learnt}")
    weights_file = os.path.join(OUT, f"07b_resnet34_sizes_{MODE}.pth")
    classifier.cpu()
    torch.save({**classifier.encoder.state_dict(), **{"fc." + k: v for k, v in classifier.fc.state_dict().items()}},
               weights_file)  # the keys of torchvision's resnet34(): conv1.weight, ..., layer4.2.bn2.bias, fc.weight
print(f"the pretrained encoder: {os.path.relpath(weights_file)}")

# %% [markdown]
# ## Fine-tuning from it, paired by seed
#
# The pretrained run is 07's `resunet34` run of the same seed with one change, its encoder's start: the same
# decoder initialisation, batches and augmentations, so a pair's difference is not blurred by the seed. 07's
# runs are read back from `out/07_resunet34_seed<s>_<data>[_quick]/` (trained here if missing); the pretrained
# ones go to `out/07b_<name>_seed<s>_...`. Two numbers per run: the validation Dice after the first epoch
# (the head start) and the best epoch's.

# %%
val_set = make_dataset(DATA, "val", root=args.data_root, size=SIZE)


def finished(folder):
    """The history in folder/history.csv (a dict of numbers per epoch) if it holds a run of EPOCHS epochs."""
    if not os.path.exists(os.path.join(folder, "best.pt")):
        return None
    with open(os.path.join(folder, "history.csv")) as f:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return history if len(history) == EPOCHS else None


def train_or_reuse(folder, name, seed, make_model):
    """The history of model `name`'s run with `seed` in `folder` (make_model() builds it), trained unless there."""
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
for seed in SEEDS:
    histories["resunet34", seed] = train_or_reuse(os.path.join(OUT, f"07_resunet34_seed{seed}_{MODE}"),
                                                  "resunet34", seed, ResNet34UNet)
    histories[PRETRAINED, seed] = train_or_reuse(os.path.join(OUT, f"07b_{PRETRAINED}_seed{seed}_{MODE}"),
                                                 PRETRAINED, seed, pretrained_unet)
print(f"\n{'seed':>4s} {'first epoch: random':>20s} {'pretrained':>10s} {'best: random':>13s} {'pretrained':>10s}")
gains = []
for seed in SEEDS:
    (random_first, random_best), (pre_first, pre_best) = (
        (histories[name, seed][0]["val_dice"], max(r["val_dice"] for r in histories[name, seed]))
        for name in ("resunet34", PRETRAINED))
    gains.append((pre_first - random_first, pre_best - random_best))
    print(f"{seed:4d} {random_first:20.4f} {pre_first:10.4f} {random_best:13.4f} {pre_best:10.4f}")
for k, what in enumerate(("after the first epoch", "at the best epoch")):
    diffs = [g[k] for g in gains]
    mean = sum(diffs) / len(diffs)
    if len(diffs) == 1:
        verdict = (f"one pair of runs, a difference of {mean:+.4f}: with one pair there is no spread to weigh it "
                   f"against (--seeds 2 or more pairs more; without --quick, three)")
    elif all(d > 0 for d in diffs) or all(d < 0 for d in diffs):
        chance = 2 / 2 ** len(diffs)  # equal encoders: every pair of one sign, either sign, this often
        verdict = (f"the pretrained encoder scored {'higher' if mean > 0 else 'lower'} with every one of "
                   f"{len(diffs)} seeds, by {mean:+.4f} on average; equal encoders give pairs all of one sign "
                   f"{chance:.0%} of the time, so " + ("this is no proof yet" if chance >= 0.05 else
                                                        "chance alone is unlikely"))
    else:
        verdict = f"the pairs disagree in sign (mean {mean:+.4f}): no difference these seeds can show"
    print(f"{what}: {verdict}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.6))
for (name, seed), hist in histories.items():
    ax.plot([h["epoch"] for h in hist], [h["val_dice"] for h in hist], "o-", alpha=0.7, markersize=3,
            color="tab:orange" if name == "resunet34" else "tab:green",
            label=("random encoder (07)" if name == "resunet34" else "pretrained encoder") if seed == SEEDS[0] else None)
ax.set(xlabel="epoch", ylabel="validation Dice", ylim=(0, 1),
       title=f"ResNet-34 U-Net, random and pretrained encoder, {len(SEEDS)} seed(s) each ({DATA})")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "07b_pretrained_dice.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "07b_pretrained_dice.png"))

# %% [markdown]
# ImageNet's encoder loads by the same route: `ResNet34UNet(encoder_weights="imagenet")` downloads
# torchvision's file once into the torch hub cache; offline, a copy fetched elsewhere loads by its path
# (`encoder_weights="resnet34-b627a593.pth"`; `--encoder-weights FILE` here or in `minunet train`).

# %%
cache = os.path.join(torch.hub.get_dir(), "checkpoints", IMAGENET_WEIGHTS_FILE)
print(f"torchvision's file: {IMAGENET_WEIGHTS_URL}\nin this machine's torch hub cache ({cache}): "
      f"{'present' if os.path.exists(cache) else 'absent'}")

# %% [markdown]
# From the command line: `minunet train --model resunet34 --encoder-weights
# tutorials/out/07b_resnet34_sizes_synthetic.pth --seed 1 --data synthetic --epochs 10 --out
# runs/pretrained-seed1` (`..._quick.pth` after `--quick`). Next, tutorial 08, which scores every checkpoint
# of 06, 07 and 07b.
#
# ## Exercises
#
# Answers: `tutorials/answers/07b_pretrained_encoder.md`; the notebook runs them after its last cell. Each
# exercise names its mode: *quick* is a `--quick` run on synthetic lesions (seconds), *full* the run without
# it.
#
# 1. **What the classifier learned.** *Quick mode.* Score a fresh, untrained `SizeClassifier` on the same
#    held-out lesions; then check that a `ResNet34UNet` built from the saved file holds exactly the
#    classifier's encoder weights.
# 2. **Fewer labelled images.** *Full mode.* Pretraining should matter most when labelled images are few.
#    Fine-tune both encoders on 40 training images (`limit=40` in `train_or_reuse`'s `make_dataset`, a fresh
#    `--out`, no `--quick`: minutes). Does the pretrained encoder's lead grow, and with how many seeds would
#    you believe it?
