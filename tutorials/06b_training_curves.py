# %% [markdown]
# # 06b · Reading training curves
#
# Reading curves is most of the craft of training. This tutorial trains three small U-Nets with `fit`, as
# tutorial 06 does, each set up to show one shape, and reads them:
#
# - a learning rate far too high; a run on 4 training images without augmentation; a run on many
#   augmented images. It **prints**, for each, what its curves did (the losses at the start and the end,
#   the gap between training and validation loss, the best validation Dice and its epoch), and **draws**
#   the three side by side (`out/06b_curve_gallery.png`);
# - the sentences after the runs are written by the code from those numbers, so that a short run and a
#   long one each say what they show;
# - training and evaluation modes: an image's output depends on its batch in one and not in the other,
#   shown on a trained U-Net;
# - how `fit` keeps the best epoch (`best.pt`) apart from the last (`last.pt`), and what it costs to use
#   the last one instead.
#
# **How long it takes.** Each run prints its seconds. `--quick` trains fewer images for fewer epochs (seconds);
# without it, 31 to 40 s on a 2-core CPU (bench/RESULTS.md, "Tutorials 06 to 09 after issue 24" and "The
# tutorials' executed notebooks"). It takes no `--data-root`: its runs need
# the noisy synthetic lesions made below. Exercises at the end; answers in
# `tutorials/answers/06b_training_curves.md`.

# %%
import argparse
import inspect
import os
import sys
import time

import matplotlib
import torch

from minunet import UNet
from minunet.cli.rundir import RunFolder
from minunet.data import LesionDataset
from minunet.data.synthetic import synthetic_split
from minunet.device import Runtime
from minunet.recipe import Recipe
from minunet.training import fit

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

parser = argparse.ArgumentParser(description="Tutorial 06b: reading training curves")
parser.add_argument("--quick", action="store_true", help="fewer images and epochs: a few seconds")
parser.add_argument("--out", metavar="DIR", help="where figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(1)  # tiny tensors: one thread beats several, which mostly wait for each other


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


# %% [markdown]
# ## Three runs
#
# Tiny U-Nets (width 8) on synthetic lesions at 32 px, with strong noise added to every image. Clean
# synthetic lesions are so regular that a handful of them teach a model the whole task; the noise of each
# image is something a model can learn by heart and that never helps on a new image, like the particular
# hairs, skin and lighting of real photographs. The validation images are noisy too (32 of them). All
# three runs use `fit` with the same recipe but for what the list says:
#
# - **learning rate 10**, where 0.003 suits these runs: every step throws the weights far off;
# - **4 images, no augmentation**, learning rate 0.003: the model sees the same 4 images, noise and all,
#   again and again (each repeated, so that an epoch has as many steps as the next run's);
# - **many images, augmented**, learning rate 0.003: a new variation of every image in every epoch.
#
# The last two differ only in their training images (4 seen again and again, or many, each in a new
# variation): the same steps, the same rate, the same schedule. The rate is 0.003 rather than `minunet
# train`'s 0.001 because in runs this short the losses fall further at 0.003; exercise 1 compares the rates.

# %%
SIZE, NOISE, WIDTH = 32, 0.3, 8
MANY, EPOCHS = (64, 8) if args.quick else (128, 16)  # training images of the augmented runs; epochs
RUNS = [  # (name, distinct training images, augment, learning rate); each epoch holds MANY images
    ("learning rate 10", MANY, True, 10.0),
    ("4 images, no augmentation", 4, False, 3e-3),
    (f"{MANY} images, augmented", MANY, True, 3e-3),
]


def noisy_split(split, n):
    """n synthetic lesions of a split at SIZE, each pixel with Gaussian noise of sd NOISE x 255."""
    pixels, truth, ids = synthetic_split(split, SIZE, n)  # (n, 3, S, S) uint8, (n, 1, S, S), ids
    g = torch.Generator().manual_seed(7)
    noisy = pixels.float() + NOISE * 255 * torch.randn(pixels.shape, generator=g)  # (n, 3, S, S)
    return noisy.clamp(0, 255).round().to(torch.uint8), truth, ids


def train_run(n_train, augment, lr):
    """A fresh U-Net trained by fit on n_train distinct noisy lesions (each repeated to fill an epoch of MANY),
    validated on val_set; (the model, its history)."""
    images, masks, ids = noisy_split("train", n_train)
    k = MANY // n_train  # each image k times per epoch
    train_set = LesionDataset(images.repeat(k, 1, 1, 1), masks.repeat(k, 1, 1, 1), ids * k, augment=augment)
    torch.manual_seed(0)
    model = UNet(base_channels=WIDTH)
    history = fit(model, train_set, val_set, Recipe(epochs=EPOCHS, batch_size=8, lr=lr, tta=False),
                  Runtime(precision="fp32"), log=None)
    return model, history


val_set = LesionDataset(*noisy_split("val", 32))
runs, models = {}, {}
for name, n_train, augment, lr in RUNS:
    start = time.perf_counter()
    models[name], runs[name] = train_run(n_train, augment, lr)
    print(f"{name}: {EPOCHS} epochs of {MANY} images ({n_train} distinct) in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## What each run did
#
# For each run: the training loss at the first and last epoch; the validation loss at its lowest and at
# the end; the *gap*, validation minus training loss at the last epoch (both are means of the same loss
# per image, so they compare, up to the augmentation the training images get); and the validation Dice.

# %%
summary = {}
for name, hist in runs.items():
    low = min(hist, key=lambda r: r["val_loss"])
    best = max(hist, key=lambda r: r["val_dice"])
    last = hist[-1]
    summary[name] = dict(gap=last["val_loss"] - last["train_loss"], best_dice=best["val_dice"],
                         best_epoch=best["epoch"], last_dice=last["val_dice"], low=low,
                         rose=last["val_loss"] - low["val_loss"], top=max(r["val_loss"] for r in hist))
    s = summary[name]
    print(f"{name:28s} train loss {hist[0]['train_loss']:7.2f} -> {last['train_loss']:.2f}; val loss lowest "
          f"{low['val_loss']:.2f} (epoch {low['epoch']}), highest {s['top']:.3g}, last {last['val_loss']:.2f}; "
          f"gap {s['gap']:+.2f}; val Dice best {s['best_dice']:.2f} (epoch {s['best_epoch']}), "
          f"last {s['last_dice']:.2f}")

# %% [markdown]
# What the numbers say, sentence by sentence (each is chosen by the code from the numbers above):

# %%
high, few, many = (summary[name] for name, *_ in RUNS)
if high["best_dice"] < 0.5 * many["best_dice"]:
    print(f"- learning rate 10: the validation loss reached {high['top']:.3g} and the best Dice was only "
          f"{high['best_dice']:.2f}, against {many['best_dice']:.2f} at 0.003: steps that large keep throwing the "
          f"weights off, and the model learns little.")
else:
    print(f"- learning rate 10 still reached a Dice of {high['best_dice']:.2f} (0.003: {many['best_dice']:.2f}): "
          f"in this run the schedule's decay brought the rate down in time.")
if few["gap"] > many["gap"] + 0.05:
    print(f"- 4 images: at the end the validation loss is {few['gap']:+.2f} above the training loss, against "
          f"{many['gap']:+.2f} for {MANY} augmented images. The model fits its own images better than new "
          f"ones: it has begun to learn them by heart, noise included. That is overfitting.")
else:
    print(f"- 4 images: the gap between validation and training loss ({few['gap']:+.2f}) is no wider than "
          f"with {MANY} augmented images ({many['gap']:+.2f}): in a run this short, no overfitting shows yet.")
if few["rose"] > 0.01:
    print(f"  Its validation loss rose by {few['rose']:.2f} after its lowest point (epoch {few['low']['epoch']}).")
else:
    print(f"  Its validation loss did not rise after its lowest point: it levelled off ({few['low']['val_loss']:.2f})"
          f" while the training loss went on falling.")
if many["best_dice"] > few["best_dice"]:
    print(f"- {MANY} augmented images: best Dice {many['best_dice']:.2f}, above the 4-image run's "
          f"{few['best_dice']:.2f}: more images, each in new variations, teach the task; 4 teach those 4.")
else:
    print(f"- {MANY} augmented images: best Dice {many['best_dice']:.2f}, not above the 4-image run's "
          f"{few['best_dice']:.2f}: in this run, more images did not pay.")

# %%
fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 6), squeeze=False)
for c, (name, hist) in enumerate(runs.items()):
    epochs = [r["epoch"] for r in hist]
    top, bottom = axes[0][c], axes[1][c]
    top.plot(epochs, [r["train_loss"] for r in hist], "-", label="train loss")
    top.plot(epochs, [r["val_loss"] for r in hist], "-", label="validation loss")
    top.set(yscale="log", title=name, xlabel="epoch")
    top.yaxis.set_major_formatter(LogFormatter())  # 0.2, not 2 x 10^-1
    top.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    bottom.plot(epochs, [r["val_dice"] for r in hist], "-", color="tab:green", label="validation Dice")
    bottom.set(ylim=(0, 1), xlabel="epoch")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "06b_curve_gallery.png"), dpi=90)
plt.close(fig)
show(os.path.join(OUT, "06b_curve_gallery.png"))

# %% [markdown]
# The loss axes are logarithmic, so that the spikes of the first run and the small differences of the
# others both show. Only the first run spikes: at a learning rate of 10 its validation loss jumps by orders
# of magnitude while its training loss stays high, near that of a model that learnt nothing. The two runs
# at 0.003 show no spike: their validation losses fall, then level off (4 images) or keep falling (many).
# The two losses are not measured alike: training runs the model in *training mode*, validation in
# *evaluation mode*.
#
# ## Training and evaluation modes
#
# In training mode BatchNorm normalises each layer with the mean and variance of the batch at hand, so an
# image's output depends on the other images in its batch; in evaluation mode it uses running averages of
# those statistics, gathered during training, so each image gets one answer whatever it is batched with.
# Validation and prediction therefore run in evaluation mode. The cell below shows the difference on the
# augmented run's trained U-Net: the first validation image's logits alone and in a batch of 4, in each
# mode. Whether the first run's spikes come from this difference (running averages gathered from weights
# that jump at every step) or from its weights alone, these runs do not tell apart.

# %%
net = models[RUNS[-1][0]]  # the augmented run's U-Net
four = torch.stack([val_set[i][0] for i in range(4)])  # (4, 3, S, S)
with torch.no_grad():
    net.train()
    gap_train = (net(four[:1])[0] - net(four)[0]).abs().max()  # the first image alone, then among 4
    net.eval()
    gap_eval = (net(four[:1])[0] - net(four)[0]).abs().max()
print(f"the first image's logits, alone and in a batch of 4, differ by up to {gap_train:.4f} in training mode "
      f"and {gap_eval:.2e} in evaluation mode (float rounding)")

# %% [markdown]
# ## Keeping the best epoch
#
# The validation Dice wobbles and, when a model overfits, falls; so a run keeps two checkpoints after every
# epoch: `best.pt`, the weights of the epoch with the best validation Dice so far (the ones to use), and
# `last.pt`, the last epoch's weights with the optimiser's and schedule's state (to resume an interrupted
# run). `minunet.cli.rundir.RunFolder`, which `minunet train` hands to `fit` as its `on_epoch`, writes them:

# %%
print(inspect.getsource(RunFolder))
for name, s in summary.items():
    print(f"{name:28s} best.pt: epoch {s['best_epoch']}, Dice {s['best_dice']:.2f}; last.pt: Dice "
          f"{s['last_dice']:.2f} ({s['last_dice'] - s['best_dice']:+.2f})")

# %% [markdown]
# The best epoch was chosen *on* the validation images, so its score there is a little optimistic: tutorial
# 08 scores images that played no part in the choice, where that shows together with the change of collection. Next, tutorial 07:
# the ResNet-34 U-Net, and what a comparison of two models can conclude.
#
# ## Exercises
#
# Answers: `tutorials/answers/06b_training_curves.md`; the notebook runs them after its last cell. All three
# run in quick mode (`--quick`: seconds), so that your numbers can be checked against the answers; the full
# run's differ.
#
# 1. **Too low, too high.** *Quick mode.* Train the augmented run again with a learning rate of 1e-4, 1e-3
#    (`minunet train`'s) and 0.1 (`train_run(MANY, True, 1e-4)`). What shape does each take, and how do you
#    tell "too low" from "healthy but cut short"?
# 2. **Augmentation against overfitting.** *Quick mode.* Train the 4-image run with `augment=True`, then with
#    16 images and no augmentation. Which narrows the gap between validation and training loss more?
# 3. **Early stopping.** *Quick mode.* `fit` trains every epoch and keeps the best. *Early stopping* instead
#    ends a run once the validation Dice has not beaten its best for `patience` epochs. Write it as a function
#    of a history: with a patience of 3, after which epoch would each run above have stopped, and would it
#    have kept the same epoch as `best.pt`?
