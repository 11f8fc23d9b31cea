# %% [markdown]
# # 06 · The training loop, and the curves it draws
#
# Everything so far comes together: the data (01) with its augmentation (02) feeds a U-Net (03), whose
# output is scored by a loss (05; minunet's default is BCE + Jaccard); an optimiser nudges the weights to
# lower that loss, batch after batch, and after every *epoch* (one pass over the training images) the model
# is scored on validation images it never trains on. This tutorial opens that loop:
#
# - it does one training step by hand, then **prints** the source of `minunet.train.train_one_epoch`, read
#   from the library itself (so it can never differ from the code that runs), and walks through it line by
#   line: the DataLoader, training and evaluation modes, autocast, the learning-rate schedule (`lr_factor`,
#   **drawn** in `out/06_lr_schedule.png`), validation without gradients (`minunet.evaluation.evaluate`),
#   keeping the best checkpoint (`minunet.rundir.save_epoch`);
# - it trains a U-Net with `minunet.train.fit`, **prints** the history and **draws** the training curves
#   (`out/06_unet_<data>/curves.png`) and a few validation predictions (`out/06_unet_predictions.png`);
# - it **draws** a gallery of training curves to recognise (`out/06_curve_gallery.png`), each from a short
#   real run: a learning rate far too high, a model overfitting 16 images, and a healthy run.
#
# The run's checkpoints (`best.pt`, `last.pt`) stay in `out/06_unet_<data>/` for tutorials 07 and 08.
#
# **How long it takes.** `--quick`: see the table in tutorials/README.md (a smoke run: tiny U-Nets, few
# images, few epochs). Without it, the U-Net of width 32 trains on 200 synthetic lesions at 128 px for 10
# epochs, or on ISIC 2016 with `--data-root` for 20 epochs; bench/RESULTS.md gives measured training
# speeds and times of that U-Net on a 2-core CPU and on a GPU. The gallery's three runs use tiny U-Nets at
# 32 px. A GPU is used automatically when PyTorch sees one.
#
# Run with no arguments (synthetic lesions), `--data-root DIR` (ISIC 2016), or `--quick`; `--epochs N`
# and `--base-channels C` change the main run.

# %%
import argparse
import inspect
import os
import sys
import textwrap
import time

import torch
from torch.utils.data import DataLoader

from minunet import UNet
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.data import LesionDataset, make_dataset
from minunet.device import Runtime, choose_device
from minunet.evaluation import evaluate
from minunet.losses import BCEJaccardLoss
from minunet.recipe import Recipe
from minunet.rundir import save_epoch
from minunet.synthetic import synthetic_split
from minunet.train import fit, lr_factor, make_loader, train_one_epoch

parser = argparse.ArgumentParser(description="Tutorial 06: the training loop")
parser.add_argument("--data-root", metavar="DIR",
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="tiny models, few images and epochs: a smoke run")
parser.add_argument("--epochs", type=int, help="epochs (default 10 on synthetic lesions, 20 on ISIC, 2 with --quick)")
parser.add_argument("--base-channels", type=int, help="the U-Net's width (default 32, 8 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where figures and runs go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128
LIMIT = 16 if args.quick else None  # at most this many images per split
EPOCHS = args.epochs or (2 if args.quick else 20 if DATA == "isic2016" else 10)
BASE = args.base_channels or (8 if args.quick else 32)
BATCH = 8 if args.quick else 16
RUN_DIR = os.path.join(OUT, f"06_unet_{DATA}" + ("_quick" if args.quick else ""))
if args.quick:  # tiny tensors: one thread beats several, which mostly wait for each other (by far on a busy machine)
    torch.set_num_threads(1)


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


def walk(function, steps):
    """Print, for each (fragment, meaning) of `steps`, the line of `function`'s source holding the fragment
    (with its line number) and what it does. A fragment the source no longer holds stops the tutorial."""
    lines = inspect.getsource(function).splitlines()
    for fragment, meaning in steps:
        found = [n for n, line in enumerate(lines, 1) if fragment in line]
        if not found:
            raise RuntimeError(f"{function.__name__} has no line with {fragment!r}: this tutorial needs updating")
        print(f"{found[0]:3d} | {lines[found[0] - 1].strip()}")
        print(textwrap.fill(meaning, 110, initial_indent="      ", subsequent_indent="      "))


# %% [markdown]
# ## The data
#
# The training split is built with `augment=True`: each time an image is read it goes through the random
# rotation, flips and colour jitter of tutorial 02, drawn from `seed`, so every epoch sees new variations
# and a rerun sees the same ones. The validation split is only normalised.

# %%
train_set = make_dataset(DATA, "train", root=args.data_root, size=SIZE, augment=True, seed=0, limit=LIMIT)
val_set = make_dataset(DATA, "val", root=args.data_root, size=SIZE, limit=LIMIT and LIMIT // 2)
print(f"{DATA}: {len(train_set)} training and {len(val_set)} validation images at {SIZE} x {SIZE}")

# %% [markdown]
# ## One training step, by hand
#
# A *batch* of images goes through the model (the *forward* pass) to give logits; the loss compares them with
# the masks; `loss.backward()` computes, for every weight, how the loss changes when that weight changes
# (its *gradient*); the optimiser (Adam) moves each weight a small step against its gradient. Repeated on
# the same batch, the loss falls: that is all learning is.

# %%
torch.manual_seed(0)
demo = UNet(base_channels=8)
optimizer = torch.optim.Adam(demo.parameters(), lr=1e-3)
loss_fn = BCEJaccardLoss()  # BCE + soft Jaccard: the default, chosen by cross-validation on ISIC
images = torch.stack([train_set[i][0] for i in range(4)])  # (4, 3, S, S)
masks = torch.stack([train_set[i][1] for i in range(4)])  # (4, 1, S, S)
for step in range(1, 4):
    logits = demo(images)  # forward: (4, 1, S, S)
    loss = loss_fn(logits, masks)
    optimizer.zero_grad()  # forget the previous step's gradients
    loss.backward()  # gradients of the loss for every weight
    optimizer.step()  # move the weights
    print(f"step {step}: loss {loss.item():.4f}")

# %% [markdown]
# ## The library's loop: `train_one_epoch`
#
# Here is the function `fit` calls once per epoch, printed from the installed library. It is the three
# steps above in a loop over the batches, plus what a real run needs: the device, mixed precision, a
# check that the loss is a number, the learning-rate schedule, and (optionally) a moving average of the
# weights.

# %%
print(inspect.getsource(train_one_epoch))

# %% [markdown]
# Line by line (the numbers are those of the listing above):

# %%
walk(train_one_epoch, [
    ("net.train()", "Training mode. BatchNorm normalises each layer with the mean and variance of *this* "
     "batch and updates its running averages of them (evaluation mode uses those averages instead)."),
    ("enumerate(batches", "`batches` is any iterable of batches: `fit` passes its DataLoader (wrapped in "
     "tqdm, which draws the progress bar), a test passes a list. Each DataLoader iteration stacks B dataset "
     "items into one batch. The dataset's extra item, the image id, goes to `*_`."),
    ("memory_format=torch.channels_last", "The images go to the model's device, in the channels-last "
     "layout (B, H, W, C in memory) that convolutions run fastest in; the shape stays (B, 3, H, W)."),
    ("torch.autocast(", "Mixed precision: inside this block, convolutions and matrix products run in "
     "`amp_dtype` (bfloat16 on a CPU with AMX or on a GPU, float16 on older GPUs; None: plain float32, "
     "`enabled=False`). Only the forward pass is inside."),
    ("loss = loss_fn(logits.float()", "The loss (BCE + Jaccard by default) is computed in float32 from the "
     "logits: one number for the batch."),
    ("finite_everywhere", "A loss that is NaN or infinite (a learning rate far too high, for example) "
     "stops the run (LossNotFinite, which fit reports with the epoch) instead of silently training on "
     "garbage."),
    ("zero_grad", "Gradients accumulate in each weight's .grad; clear last step's first."),
    (".backward()", "Backpropagation: the gradient of the loss for every weight. The scaler multiplies the "
     "loss first when training in float16 (tiny gradients would round to zero); otherwise it does nothing."),
    ("scaler.step(optimizer)", "The Adam step (through the scaler, which skips it if float16 gradients "
     "overflowed)."),
    ("scheduler.step()", "The learning rate for the next step: the schedule is per step, not per epoch "
     "(see lr_factor below)."),
    ("total += loss.item()", "The running sum of the batch losses; .item() copies the number to Python."),
    ("return total / step", "The epoch's training loss: the mean over its batches, taken while the weights "
     "were still changing and on augmented images, so it is not directly comparable to the validation loss."),
])

# %% [markdown]
# ## The DataLoader
#
# `fit` builds the loader with `make_loader`. The sampler shuffles the images (seeded, a new order each
# epoch); `drop_last=True` drops a last short batch, so every step sees a full batch (a batch of one image is
# not the problem it is often said to be: BatchNorm still has every pixel of its maps to average over; only a
# map of 1 x 1 pixels with a batch of one leaves a single value per channel, and
# `minunet.batchnorm.check_batchnorm` refuses such a run before it starts); worker processes (on a GPU)
# read and augment the next batches while the model trains.

# %%
walk(make_loader, [
    ("DataLoader(dataset", "Batches of `batch_size` items, in the sampler's order."),
    ("if len(loader) == 0", "Fewer images than one batch: a clear error instead of an epoch of nothing."),
])
loader = DataLoader(train_set, batch_size=4, shuffle=True, drop_last=True)
batch_images, batch_masks, batch_ids = next(iter(loader))
print(f"one batch: images {tuple(batch_images.shape)}, masks {tuple(batch_masks.shape)}, ids {list(batch_ids)}")

# %% [markdown]
# ## Training and evaluation modes
#
# The same model gives different outputs in the two modes. In training mode BatchNorm uses the batch's own
# statistics, so an image's output depends on the other images in its batch; in evaluation mode it uses the
# running averages, so each image gets one answer whatever it is batched with. Validation and prediction
# must therefore run in evaluation mode (`model.eval()`), and training in training mode (`model.train()`).

# %%
with torch.no_grad():
    demo.train()
    alone = demo(images[:1])[0]  # (1, S, S): the first image in a batch of one...
    together = demo(images)[0]  # ...and in a batch of four
    print(f"training mode:   first image's logits differ by up to {(alone - together).abs().max():.4f} "
          f"between a batch of 1 and a batch of 4")
    demo.eval()
    alone, together = demo(images[:1])[0], demo(images)[0]
    print(f"evaluation mode: they differ by up to {(alone - together).abs().max():.2e} (float rounding)")

# %% [markdown]
# ## Autocast: the precision
#
# `minunet.device.choose_device` picks the device and the autocast dtype once, for every command:
# bfloat16 where the hardware computes it natively (a GPU, or a CPU with AMX or AVX-512 BF16), float32
# elsewhere, where emulated bfloat16 would be slower. It says what it picked on this machine:

# %%
device, amp_dtype = choose_device("auto", "auto")
print(f"device {device}, autocast dtype {amp_dtype} (None: float32, no autocast)")

# %% [markdown]
# ## The learning-rate schedule: `lr_factor`
#
# `fit` multiplies Adam's learning rate at every step by `lr_factor(step, warmup_steps, total_steps)`: it
# rises linearly over the first epoch (the *warm-up*: large steps on random weights can wreck BatchNorm's
# statistics), then falls along a cosine to zero at the last step, so the last epochs make small, careful
# steps.

# %%
print(inspect.getsource(lr_factor))
walk(fit, [
    ("warmup = ", "The warm-up is one epoch, at most a tenth of the run."),
    ("LambdaLR(", "PyTorch's scheduler calls lr_factor once per scheduler.step(), i.e. after every batch."),
])

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

steps_per_epoch, epochs_shown = 13, 10  # e.g. 200 images in batches of 16, 10 epochs
total = steps_per_epoch * epochs_shown
warmup = max(1, min(steps_per_epoch, total // 10))
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot([s / steps_per_epoch for s in range(total)], [1e-3 * lr_factor(s, warmup, total) for s in range(total)])
ax.set(xlabel="epoch", ylabel="learning rate", title="lr_factor x 1e-3: warm-up, then cosine decay")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "06_lr_schedule.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "06_lr_schedule.png"))

# %% [markdown]
# ## Validation, without gradients
#
# After each epoch `fit` scores the model on the validation split with `minunet.evaluation.evaluate`, the
# same function `minunet evaluate` uses. It runs under `torch.no_grad()` (its decorator): no graph of the
# computation is kept for a backward pass, which saves memory and time, and nothing can train by accident.
# It switches to evaluation mode and, at the end, back to the mode the model was in.

# %%
walk(evaluate, [
    ("@torch.no_grad()", "Everything inside runs without recording gradients."),
    ("model.eval()", "Evaluation mode (BatchNorm's running averages), on the device."),
    ("model.train(was_training)", "Back to the mode the caller had."),
])
with torch.no_grad():
    print(f"a forward pass under torch.no_grad(): requires_grad={demo(images).requires_grad}")
print(f"and without it:                     requires_grad={demo(images).requires_grad}")

# %% [markdown]
# ## Keeping the best epoch
#
# Later epochs are not always better: the validation Dice wobbles, and a model that starts memorising its
# training images gets worse on new ones. So `fit` keeps two checkpoints: `best.pt`, the weights of the
# epoch with the best validation Dice so far (the ones to use), and `last.pt`, the last epoch's weights with
# the optimiser's and schedule's state (to resume an interrupted run). `minunet.rundir.save_epoch` writes
# them, with `history.csv` and `curves.png`, after every epoch.

# %%
walk(fit, [
    ("for epoch in range(", "One epoch at a time."),
    ("train_set.set_epoch(epoch)", "Fresh, seeded augmentations for this epoch."),
    ("train_loss = train_one_epoch(", "The loop above."),
    ("**validate(", "Validation loss, Dice and Jaccard (evaluate, in evaluation mode, without gradients)."),
    ("is_best, best_dice =", "Is this epoch's validation Dice the best so far?"),
    ("save_epoch(out_dir, model, scored if is_best else None", "best.pt only when it is, last.pt always."),
])
walk(save_epoch, [
    ("if best is not None:", "Only for a new best epoch..."),
    ('"best.pt"', "...are its weights written as best.pt."),
    ('"last.pt"', "last.pt: every epoch, with what resuming needs."),
])

# %% [markdown]
# ## One epoch by hand, then `fit`
#
# With the pieces above, one epoch is a call to `train_one_epoch` on a DataLoader, then `evaluate`: what
# `fit` does each epoch, minus the bookkeeping.

# %%
torch.manual_seed(0)
model = UNet(base_channels=BASE).to(device, memory_format=torch.channels_last)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, drop_last=True)
steps = len(loader)  # a run of one epoch: all of it warm-up
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps, steps))
scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
train_loss = train_one_epoch(model, loader, BCEJaccardLoss(), optimizer, scheduler, scaler, amp_dtype)
scores = evaluate(model, val_set, runtime=Runtime(device))
print(f"one epoch by hand: training loss {train_loss:.4f}; validation loss {scores['loss']:.4f}, "
      f"Dice {scores['dice']:.4f}")

# %% [markdown]
# `fit` does the same with the recipe of this library, `minunet.recipe.Recipe`: Adam, the schedule above,
# batches of 16, the BCE + Jaccard loss, validation after every epoch (with flip TTA), the best epoch kept, and
# a seed that fixes the initial weights, the batch order and every augmentation, so a rerun repeats. Called
# with `Recipe()` (or no recipe) it runs exactly what `minunet train` runs; here only the epochs and the
# batch size are set. The U-Net here has width 32
# (7.8 million parameters): the classic width 64 doubles the channels of every layer, four times the
# computation. `minunet train` defaults to width 16: on ISIC it was as accurate as width 32 in a paired
# cross-validation, in under half the time (bench/RESULTS.md).

# %%
torch.manual_seed(0)
model = UNet(base_channels=BASE)
print(f"UNet(base_channels={BASE}): {sum(p.numel() for p in model.parameters()):,d} parameters; "
      f"{EPOCHS} epoch(s) into {os.path.relpath(RUN_DIR)}")
start = time.perf_counter()
history = fit(model, train_set, val_set, RUN_DIR, Recipe(epochs=EPOCHS, batch_size=BATCH))
print(Recipe(epochs=EPOCHS, batch_size=BATCH))
print(f"{time.perf_counter() - start:.0f} s on this machine")

# %% [markdown]
# `fit` returns the history, one dict per epoch (the same rows as `history.csv`). Look for the training loss
# falling steadily and the validation Dice rising and then levelling off. With `--quick` (two epochs on 16
# small images) the model has barely started: expect a low Dice.

# %%
print(f"{'epoch':>5s} {'lr':>9s} {'train loss':>10s} {'val loss':>9s} {'val Dice':>9s} {'val Jaccard':>11s}")
for r in history:
    print(f"{r['epoch']:5d} {r['lr']:9.2e} {r['train_loss']:10.4f} {r['val_loss']:9.4f} {r['val_dice']:9.4f} "
          f"{r['val_jaccard']:11.4f}")
show(os.path.join(RUN_DIR, "curves.png"))

# %% [markdown]
# ## The best epoch's predictions
#
# The model object now holds the *last* epoch's weights; the best are in `best.pt`. `load_checkpoint`
# reads a checkpoint (safely: tensors and plain data only) and `model_from_checkpoint` rebuilds the model
# it describes, weights included, in evaluation mode. `evaluate` averages the probabilities over the image and
# its flips, as validation did, and calls a pixel lesion where that probability is above 0.5.

# %%
best = model_from_checkpoint(load_checkpoint(os.path.join(RUN_DIR, "best.pt")))
scores = evaluate(best, val_set, runtime=Runtime(device), pictures=True)  # pictures: the masks it scored
print(f"best epoch {max(history, key=lambda r: r['val_dice'])['epoch']}: validation Dice {scores['dice']:.4f}, "
      f"Jaccard {scores['jaccard']:.4f} over {scores['count']} images")

from minunet.plots import plot_cases  # noqa: E402

picked = list(range(min(4, len(val_set))))
images, truths, preds = zip(*(scores["pictures"][i] for i in picked))  # each: image, true mask, scored mask
plot_cases(images, truths, preds, os.path.join(OUT, "06_unet_predictions.png"),
           titles=[f"{scores['ids'][i]} Dice {scores['per_image']['dice'][i]:.2f}" for i in picked])
show(os.path.join(OUT, "06_unet_predictions.png"))

# %% [markdown]
# ## A gallery of training curves
#
# Reading curves is most of the craft. Three short real runs, each with `fit`, show three shapes to
# recognise. They use tiny U-Nets on synthetic lesions at 32 px, with strong noise added to every image:
# clean synthetic lesions are so regular that even 16 of them teach a model the whole task, and nothing
# could overfit; the noise of each image is something a model can memorise and that never helps on a new
# image, like the particular hairs, skin and lighting of real photographs.
#
# - **learning rate far too high** (10, where 0.003 suits these runs): each step throws the weights far
#   off; the training loss stalls high, the validation Dice stays at 0 (no predicted pixel falls on a
#   lesion), and the validation loss jumps by orders of magnitude;
# - **overfitting**: 16 training images, no augmentation, many epochs: the training loss keeps falling
#   towards 0 while the validation loss levels off far above it (and, late in the run, creeps back up),
#   and the Dice stalls: from some epoch on the model learns those 16 images, noise included, not lesions;
# - **healthy**: more images, with augmentation: both losses fall together and level off, the
#   validation Dice rises and stays.
#
# In all three the validation loss of the first epochs can spike: evaluation mode uses BatchNorm's running
# averages, which lag behind weights that are still moving fast. The loss axes are logarithmic so that
# spikes and small differences both show. With `--quick` the runs are shorter and smaller, and the shapes
# are less clear than without it.

# %%
GALLERY_SIZE, NOISE = 32, 0.3
GALLERY_BASE = 8 if args.quick else 16
GALLERY = [  # (title, training images, augment, learning rate, epochs)
    ("learning rate too high (10)", 32 if args.quick else 128, True, 10.0, 4 if args.quick else 12),
    ("overfitting 16 images", 16, False, 3e-2, 24 if args.quick else 60),
    ("healthy (lr 0.003)", 48 if args.quick else 128, True, 3e-3, 6 if args.quick else 12),
]


def noisy_split(split, n):
    """n synthetic lesions of a split at GALLERY_SIZE, each pixel with Gaussian noise of sd NOISE x 255."""
    pixels, truth, ids = synthetic_split(split, GALLERY_SIZE, n)  # (n, 3, S, S) uint8, (n, 1, S, S), ids
    g = torch.Generator().manual_seed(7)
    noisy = pixels.float() + NOISE * 255 * torch.randn(pixels.shape, generator=g)  # (n, 3, S, S)
    return noisy.clamp(0, 255).round().to(torch.uint8), truth, ids


gallery_val = LesionDataset(*noisy_split("val", 16 if args.quick else 32))
runs = []
for title, n_train, augment, lr, epochs in GALLERY:
    torch.manual_seed(0)
    gallery_train = LesionDataset(*noisy_split("train", n_train), augment=augment)
    start = time.perf_counter()
    hist = fit(UNet(base_channels=GALLERY_BASE), gallery_train, gallery_val, None,
               Recipe(epochs=epochs, batch_size=8, lr=lr), Runtime(precision="fp32"), show_progress=False,
               log=lambda line: None)
    runs.append((title, hist))
    low = min(hist, key=lambda r: r["val_loss"])
    print(f"{title:28s} {time.perf_counter() - start:4.0f} s; train loss {hist[0]['train_loss']:.2f} -> "
          f"{hist[-1]['train_loss']:.2f}; val loss lowest {low['val_loss']:.2f} (epoch {low['epoch']}), "
          f"last {hist[-1]['val_loss']:.2f}; val Dice best {max(r['val_dice'] for r in hist):.2f}, "
          f"last {hist[-1]['val_dice']:.2f}")

# %%
fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 6), squeeze=False)
for c, (title, hist) in enumerate(runs):
    epochs = [r["epoch"] for r in hist]
    top, bottom = axes[0][c], axes[1][c]
    top.plot(epochs, [r["train_loss"] for r in hist], "-", label="train loss")
    top.plot(epochs, [r["val_loss"] for r in hist], "-", label="validation loss")
    top.set(yscale="log", title=title, xlabel="epoch")
    top.yaxis.set_major_formatter(LogFormatter())  # 0.2, not 2 x 10^-1
    top.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    bottom.plot(epochs, [r["val_dice"] for r in hist], "-", color="tab:green", label="validation Dice")
    bottom.set(ylim=(0, 1), xlabel="epoch")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "06_curve_gallery.png"), dpi=90)
plt.close(fig)
show(os.path.join(OUT, "06_curve_gallery.png"))

# %% [markdown]
# The same run as `fit` above, from the command line: `minunet train --model unet --base-channels 32 --epochs 10
# --out runs/unet`, whose other flags default to the same recipe (add `--data isic2016 --data-root DIR` for
# ISIC). Next, tutorial 07: the same training with the ResNet-34 encoder, and what a comparison of two models
# can conclude.
#
# ## Exercises
#
# 1. Set the gallery's healthy run to `lr=1e-4`. Expect both losses to fall slowly and the Dice to be still
#    climbing at the last epoch: too low a rate looks like a healthy run cut short. Try `lr=1.0`: the first
#    epochs look like the "too high" run, then the cosine decay brings the rate down and it may recover late.
# 2. Give the overfitting run `augment=True`. Expect the gap between its training and validation losses to
#    narrow: augmentation shows the model a new variation of each image every epoch, which is harder to
#    memorise. Then give it 128 images instead of 16.
# 3. In the main run, pass `Recipe(..., ema=0.99)` to `fit` and compare `history.csv` with the run without it.
#    Expect a smoother validation curve: the validated weights are a moving average over the steps
#    (`minunet.ema`; the listing above shows where `ema.update` is called).
