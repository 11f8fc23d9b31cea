# %% [markdown]
# # 07 · The ResNet-34 U-Net, and what a comparison can conclude
#
# `minunet.ResNet34UNet` puts the ResNet-34 encoder of tutorial 04 under a U-Net decoder: five up-sampling
# blocks that fuse, at each scale, the encoder's feature map of that size. This tutorial **prints** a
# tensor's shape through the decoder, then trains it and the U-Net of tutorial 06 with the same recipe,
# each with several seeds, and **prints** what the comparison can and cannot conclude: every run's
# validation Dice, each model's mean and spread over the seeds, and how much of the validation score is
# optimism (the best epoch was chosen on those same images). It **draws** the validation Dice curves of
# every run and the spread over seeds (`out/07_compare_dice.png`), and the two models' predictions on the
# same validation images (`out/07_compare_predictions.png`). It reuses tutorial 06's run as the U-Net's
# seed 0 when there is one (same data and mode), and keeps its own runs in `out/07_*` for tutorial 08.
#
# **How long it takes.** `--quick`: see the table in tutorials/README.md (2 seeds, 2 epochs on 16 images
# at 64 px: a smoke run, whose Dice means nothing). Without it: 3 seeds x 2 models, each run as long as
# tutorial 06's (10 epochs on synthetic lesions, 20 on ISIC); bench/RESULTS.md gives both models' measured
# training speeds and times, on a 2-core CPU and on a GPU. `--seeds N` changes the number of seeds.
#
# The encoder starts from random weights (`--encoder-weights none`, the default). `--encoder-weights
# imagenet` (downloaded once by torchvision) or `--encoder-weights FILE` (a saved resnet34-b627a593.pth)
# start it from ImageNet weights instead. No run behind these tutorials used them (this project's
# machines cannot download them), so nothing below says what they do.

# %%
import argparse
import csv
import os
import sys
import time

import torch

from minunet import ResNet34UNet, UNet
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.data import make_dataset
from minunet.device import Runtime
from minunet.evaluation import evaluate
from minunet.recipe import Recipe
from minunet.train import fit

parser = argparse.ArgumentParser(description="Tutorial 07: the ResNet-34 U-Net, compared with the U-Net")
parser.add_argument("--data-root", metavar="DIR",
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="few images, 2 epochs, 2 seeds: a smoke run")
parser.add_argument("--epochs", type=int, help="epochs (default 10 on synthetic lesions, 20 on ISIC, 2 with --quick)")
parser.add_argument("--seeds", type=int, help="seeds per model (default 3, 2 with --quick)")
parser.add_argument("--encoder-weights", default="none", metavar="{none,imagenet,FILE}",
                    help="the encoder's start: random (default), torchvision's ImageNet weights, or a state dict file")
parser.add_argument("--out", metavar="DIR", help="where figures and runs go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128  # as tutorial 06
LIMIT = 16 if args.quick else None  # at most this many images per split, as tutorial 06
EPOCHS = args.epochs or (2 if args.quick else 20 if DATA == "isic2016" else 10)
BASE = 8 if args.quick else 32  # the U-Net's width, as tutorial 06
BATCH = 8 if args.quick else 16
SEEDS = list(range(args.seeds or (2 if args.quick else 3)))
MODE = f"{DATA}" + ("_quick" if args.quick else "")
ENCODER = None if args.encoder_weights == "none" else args.encoder_weights
RES_NAME = "resunet34" if ENCODER is None else "resunet34_pretrained"
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


def shape(t):
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def new_model(name):
    """A freshly initialised model (seed it first): "unet" or RES_NAME."""
    if name == "unet":
        return UNet(base_channels=BASE)
    try:
        return ResNet34UNet(encoder_weights=ENCODER)
    except (RuntimeError, OSError, ValueError) as err:  # offline "imagenet", a missing or wrong file
        sys.exit(f"cannot load the encoder weights: {err}")


# %% [markdown]
# ## The model, and its decoder
#
# The encoder gives five maps, at 1/2 to 1/32 of the input (tutorial 04). Each `DecoderBlock` doubles the
# height and width of what comes up (nearest-neighbour up-sampling, to exactly the skip's size, so odd
# sizes line up), concatenates the encoder's map of that size, and mixes the two with two
# 3x3 conv-BatchNorm-ReLU layers. The last block reaches the full size with no skip, and a 3x3
# convolution (`head`) gives one logit per pixel. The decoder's widths (256, 128, 64, 32, 16) are those
# of segmentation_models_pytorch's `Unet("resnet34")`, a common baseline.

# %%
torch.manual_seed(0)
model = new_model(RES_NAME)
print(f"ResNet34UNet (encoder: {args.encoder_weights}): {n_params(model):,d} parameters, "
      f"{n_params(model.encoder):,d} of them in the encoder")

x = torch.randn(1, 3, SIZE, SIZE)
with torch.no_grad():
    model.eval()
    f1, f2, f3, f4, f5 = model.encoder(x)
    print(f"input {shape(x)}; encoder bottom f5 {shape(f5)}")
    d = model.decoder[0](f5, f4.shape[2:], f4)
    print(f"decoder[0]: f5 up to {tuple(f4.shape[2:])}, + f4 {shape(f4)} -> {shape(d)}")
    d = model.decoder[1](d, f3.shape[2:], f3)
    print(f"decoder[1]: up, + f3 {shape(f3)} -> {shape(d)}")
    d = model.decoder[2](d, f2.shape[2:], f2)
    print(f"decoder[2]: up, + f2 {shape(f2)} -> {shape(d)}")
    d = model.decoder[3](d, f1.shape[2:], f1)
    print(f"decoder[3]: up, + f1 {shape(f1)} -> {shape(d)}")
    d = model.decoder[4](d, x.shape[2:])
    print(f"decoder[4]: up to the input's size, no skip -> {shape(d)}")
    print(f"head: -> {shape(model.head(d))} logits")

# %% [markdown]
# ## Training both, with several seeds
#
# Same data, same recipe as tutorial 06; only the model differs. But one run of each would not be a
# comparison: the *seed* decides the initial weights, the order of the batches and every augmentation,
# and two runs that differ only in their seed end with different scores. How different is what the
# seeds measure: a difference between two models smaller than the spread of one model over seeds is
# not evidence that either is better.
#
# Each run goes to `out/07_<model>_seed<s>_<data>/` (the U-Net's seed 0 is tutorial 06's run when its
# folder holds a run of as many epochs); a run already there is read back, not repeated.

# %%
val_set = make_dataset(DATA, "val", root=args.data_root, size=SIZE, limit=LIMIT and LIMIT // 2)


def read_history(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def run_dir(name, seed):
    if name == "unet" and seed == 0:
        return os.path.join(OUT, f"06_unet_{MODE}")  # where tutorial 06 leaves its run
    return os.path.join(OUT, f"07_{name}_seed{seed}_{MODE}")


def train_or_reuse(name, seed):
    """The history of the run of model `name` with `seed`, trained now unless its folder holds it."""
    folder = run_dir(name, seed)
    done = os.path.join(folder, "history.csv")
    if os.path.exists(os.path.join(folder, "best.pt")) and os.path.exists(done) and len(read_history(done)) == EPOCHS:
        print(f"{name} seed {seed}: reusing {os.path.relpath(folder)}")
        return read_history(done)
    train_set = make_dataset(DATA, "train", root=args.data_root, size=SIZE, augment=True, seed=seed, limit=LIMIT)
    torch.manual_seed(seed)
    start = time.perf_counter()
    history = fit(new_model(name), train_set, val_set, folder, Recipe(epochs=EPOCHS, batch_size=BATCH, seed=seed),
                  show_progress=False, log=lambda line: None)
    print(f"{name} seed {seed}: {EPOCHS} epoch(s) on {len(train_set)} images in {time.perf_counter() - start:.0f} s "
          f"-> {os.path.relpath(folder)}")
    return history


histories = {(name, seed): train_or_reuse(name, seed) for name in ("unet", RES_NAME) for seed in SEEDS}

# %% [markdown]
# ## What the validation score is, and is not
#
# `best.pt` is the epoch with the best validation Dice, so its validation Dice was *chosen* on these
# images: the maximum of several noisy scores is higher, on average, than what the same weights will score
# on new images. The validation split is not held out. Two numbers bound how much that matters here: the
# last epoch's validation Dice (not chosen, but also not the weights kept), and tutorial 08, which scores
# the same checkpoints on the test split that played no part in training or in choosing.
#
# The validation split is also small (50 synthetic images; 75 of ISIC 2016's at hand), so even a fixed
# model's score has a sampling error: the standard error printed below is the standard deviation of the
# per-image Dice divided by the square root of the number of images.

# %%
results = {}
print(f"{'model':13s} {'seed':>4s} {'params':>11s} {'best epoch':>10s} {'val Dice, best epoch':>20s} "
      f"{'(std. error)':>12s} {'val Dice, last epoch':>20s} {'train img/s':>11s}")
for (name, seed), hist in histories.items():
    net = model_from_checkpoint(load_checkpoint(os.path.join(run_dir(name, seed), "best.pt")))
    scores = evaluate(net, val_set)
    dice = scores["per_image"]["dice"]  # (N,)
    sem = (dice.std() / len(dice) ** 0.5).item() if len(dice) > 1 else float("nan")
    best = max(hist, key=lambda r: r["val_dice"])
    results[name, seed] = dict(net=net, scores=scores, best=scores["dice"], last=hist[-1]["val_dice"], hist=hist)
    print(f"{name:13s} {seed:4d} {n_params(net):11,d} {int(best['epoch']):10d} {scores['dice']:20.4f} "
          f"{sem:12.4f} {hist[-1]['val_dice']:20.4f} "
          f"{sum(r['train_images_per_s'] for r in hist) / len(hist):11.1f}")

# %% [markdown]
# ## Mean and spread over seeds
#
# For each model: the mean of its best-epoch validation Dice over the seeds, the lowest and highest, and
# the mean optimism (best epoch minus last epoch). The sentence after the table is written by the code
# from these numbers: it says only what they allow.

# %%
summary = {}
for name in ("unet", RES_NAME):
    best_scores = [results[name, s]["best"] for s in SEEDS]
    optimism = [results[name, s]["best"] - results[name, s]["last"] for s in SEEDS]
    summary[name] = (sum(best_scores) / len(SEEDS), min(best_scores), max(best_scores))
    print(f"{name:20s} best-epoch val Dice: mean {summary[name][0]:.4f}, range {summary[name][1]:.4f} to "
          f"{summary[name][2]:.4f} over {len(SEEDS)} seed(s); best minus last epoch: mean "
          f"{sum(optimism) / len(SEEDS):+.4f}")
(mu_a, lo_a, hi_a), (mu_b, lo_b, hi_b) = summary["unet"], summary[RES_NAME]
if len(SEEDS) < 2:
    print("One seed per model: no spread to compare a difference with; these runs cannot rank the models.")
elif lo_a <= hi_b and lo_b <= hi_a:
    print(f"The ranges overlap: the difference of the means ({mu_b - mu_a:+.4f}) is within the spread "
          f"over seeds, so these runs cannot tell which model is better here.")
else:
    winner = RES_NAME if mu_b > mu_a else "unet"
    print(f"The ranges do not overlap: {winner} scored higher with every seed, on these validation images "
          f"(whose best epochs were chosen on them; tutorial 08 scores held-out images). {len(SEEDS)} seeds "
          f"are few: more seeds, or cross-validation folds (bench/accuracy.py --folds), make it firmer.")

# %% [markdown]
# What this comparison does not say: anything about other data, other sizes or longer training; and
# nothing about ImageNet weights unless `--encoder-weights` gave them. *An expectation, not a measurement
# of this project:* an encoder pretrained on ImageNet already responds to edges and textures, which is why
# pretrained encoders are the usual choice for small medical data sets, and they are expected to help most
# when training images are few. Exercise 2 tests that expectation.
#
# bench/RESULTS.md reports both models trained on ISIC 2016 with one seed (20 epochs, 128 px) and the
# epoch-to-epoch wobble of their validation Dice: a gap between them smaller than that wobble is noise.

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from minunet.plots import to_display  # noqa: E402

COLOURS = {"unet": "tab:blue", RES_NAME: "tab:orange"}
fig, (ax, spread) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw=dict(width_ratios=[2, 1]))
for (name, seed), r in results.items():
    ax.plot([h["epoch"] for h in r["hist"]], [h["val_dice"] for h in r["hist"]], "o-", color=COLOURS[name],
            alpha=0.7, markersize=3, label=name if seed == SEEDS[0] else None)
ax.set(xlabel="epoch", ylabel="validation Dice", ylim=(0, 1), title=f"every run, {len(SEEDS)} seeds each ({DATA})")
ax.legend()
for k, name in enumerate(("unet", RES_NAME)):
    spread.plot([k] * len(SEEDS), [results[name, s]["best"] for s in SEEDS], "o", color=COLOURS[name])
    spread.plot([k + 0.25] * len(SEEDS), [results[name, s]["last"] for s in SEEDS], "x", color=COLOURS[name])
spread.set(xticks=[0.1, 1.1], xticklabels=["unet", RES_NAME], xlim=(-0.5, 1.6), ylabel="validation Dice",
           title="one mark per seed")
spread.legend(handles=[Line2D([], [], marker="o", ls="", color="grey", label="best epoch (chosen on val)"),
                       Line2D([], [], marker="x", ls="", color="grey", label="last epoch")], fontsize=8)
for a in (ax, spread):
    a.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "07_compare_dice.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "07_compare_dice.png"))

# %% [markdown]
# The same validation images through both models (seed 0 of each): green is the true mask, red each
# model's prediction.

# %%
picked = list(range(min(4, len(val_set))))
pair = [(name, results[name, SEEDS[0]]) for name in ("unet", RES_NAME)]
fig, axes = plt.subplots(len(picked), 4, figsize=(9, 2.4 * len(picked)), squeeze=False)
for r, i in enumerate(picked):
    image, mask, image_id = val_set[i]
    shown = to_display(image)  # (S, S, 3) in [0, 1]
    panels = [("image", None, None), ("true mask", mask[0].bool(), (0.0, 1.0, 0.0))]
    for name, res in pair:
        with torch.no_grad():
            pred = res["net"](image[None])[0, 0] > 0  # (S, S) bool: logit > 0
        panels.append((f"{name}: Dice {res['scores']['per_image']['dice'][i]:.2f}", pred, (1.0, 0.0, 0.0)))
    for c, (title, m, colour) in enumerate(panels):
        picture = shown if m is None else torch.where(m[..., None], 0.55 * shown + 0.45 * torch.tensor(colour), shown)
        axes[r][c].imshow(picture.tolist())
        axes[r][c].set_title(title if c else image_id, fontsize=8)
        axes[r][c].set_axis_off()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "07_compare_predictions.png"), dpi=90)
plt.close(fig)
show(os.path.join(OUT, "07_compare_predictions.png"))

# %% [markdown]
# From the command line, one run per seed: `minunet train --model resunet34 --seed 1 --epochs 20 --data
# isic2016 --data-root DIR --out runs/resunet34-seed1`. Next, tutorial 08: these checkpoints scored on
# held-out images, and the failure report.
#
# ## Exercises
#
# 1. Run with `--seeds 5`. Expect each model's range to widen a little (more seeds reach further into the
#    tails) while the means move less than the ranges: the spread is a property of the recipe, and more
#    seeds measure it better rather than shrink it.
# 2. If you can download (or copy) torchvision's ResNet-34 weights, run with `--encoder-weights imagenet`
#    (or `FILE`) and `--data-root` on ISIC 2016. The expectation above says the pretrained encoder should
#    beat the random one; the test is whether its whole range over seeds lies above the random encoder's.
#    Then try `--epochs 3`: pretraining is expected to matter more when training is short.
# 3. In `train_or_reuse`, change `limit=LIMIT` to `limit=50` (fewer training images), delete the
#    `out/07_*` and `out/06_*` runs so that nothing is reused, and compare the spread over seeds with the
#    full run's. Expect lower scores and a wider spread: with fewer images, each seed's draws matter more.
