# %% [markdown]
# # 06 · The training loop
#
# Everything so far comes together: the data (01) with its augmentation (02) feeds a U-Net (03), whose
# output is scored by a loss (05); an optimiser nudges the weights to lower that loss, batch after batch,
# and after every *epoch* (one pass over the training images) the model is scored on validation images it
# never trains on. This tutorial builds that loop, then runs the library's:
#
# - one training step by hand; then **you** write the loop of one epoch from its five parts, and it is
#   checked against `minunet.training.loop.train_one_epoch` (the same losses, the same weights, to the bit);
# - the source of `train_one_epoch`, **printed** from the library itself and walked through: training
#   mode, autocast, the DataLoader and the steps of an epoch, the learning-rate schedule (**drawn** for this
#   run: `out/06_lr_schedule.png`), validation without gradients, the best epoch;
# - a U-Net trained with `minunet.training.loop.fit`: the history, the best validation Dice and the seconds it
#   took **printed**, the curves (`out/06_unet_<data>/curves.png`) and validation predictions
#   (`out/06_unet_predictions.png`) **drawn**. Its checkpoints stay in `out/06_unet_<data>/` for 07 and 08.
#
# **How long it takes.** The run prints its seconds. `--quick`: 3 epochs on the 200 synthetic lesions at
# 32 px (seconds). Without it: 10 epochs at 128 px (20 on ISIC 2016 with `--data-root`); its time on a
# 2-core CPU is in bench/RESULTS.md ("Tutorials"). A GPU is used when PyTorch sees one. `--epochs N`
# changes the run. Next, 06b reads training curves. Exercises at the end; answers in
# `tutorials/answers/06_train_unet.md`.

# %%
import argparse
import ast
import copy
import inspect
import os
import sys
import textwrap
import time

import matplotlib
import torch
from torch.utils.data import DataLoader

from minunet import UNet
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.data import make_dataset
from minunet.device import Runtime, choose_device
from minunet.evaluation import evaluate
from minunet.losses import BCEJaccardLoss
from minunet.plots import plot_cases
from minunet.recipe import Recipe
from minunet.cli.rundir import RunFolder
from minunet.training import fit, lr_factor, train_one_epoch
from minunet.training.loop import optimiser

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

parser = argparse.ArgumentParser(description="Tutorial 06: the training loop")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="32 px images, 3 epochs: a run of seconds")
parser.add_argument("--epochs", type=int, help="epochs (default 10 on synthetic lesions, 20 on ISIC, 3 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where figures and runs go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
# --quick: small images in batches of 32 (18 steps in all on the 200 synthetic lesions); 07 and 08 use the same
SIZE, BATCH = (32, 32) if args.quick else (128, 16)
EPOCHS = args.epochs or (3 if args.quick else 20 if DATA == "isic2016" else 10)
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
train_set = make_dataset(DATA, "train", root=args.data_root, size=SIZE, augment=True, seed=0)
val_set = make_dataset(DATA, "val", root=args.data_root, size=SIZE)
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
# BCE + soft Jaccard, minunet's default loss. In bench/RESULTS.md's paired cross-validation on ISIC its gain over
# BCE + Dice was within the noise: +0.0040 +- 0.0021 Dice for the ResNet-34 U-Net (1.9 standard errors, under
# the two that tutorials 07 and 08 ask), -0.0002 +- 0.0015 for the U-Net
loss_fn = BCEJaccardLoss()
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
# ## Your turn: one epoch, from its parts
#
# An epoch is that step repeated for every batch. Fill in the five `...` lines of `my_train_one_epoch`
# (the step above holds all you need) and run the cell after it: it trains one small U-Net from the same
# starting weights on the same three batches with your function and with minunet's `train_one_epoch`, and
# compares every batch's loss and every weight. Until the blanks are filled it says so and goes on. The
# filled-in function is the first answer in `tutorials/answers/06_train_unet.md`: try before you look.

# %%
def my_train_one_epoch(model, batches, loss_fn, optimizer):
    """One pass over `batches`, a list of (images, masks) pairs; returns the mean of the batch losses."""
    model.train()  # training mode (see `net.train()` in the library's loop below)
    losses = []
    for images, masks in batches:
        logits = ...  # 1. forward: the model's logits for these images, (B, 1, S, S)
        loss = ...  # 2. the loss of those logits against the masks: one number
        ...  # 3. clear the gradients the previous batch left in every weight
        ...  # 4. backward: the gradient of the loss for every weight
        ...  # 5. step: the optimiser moves every weight
        losses.append(loss.item())
    return sum(losses) / len(losses)


def recording(loss_fn, into):
    """loss_fn, also appending each loss it computes to the list `into`."""
    def loss_and_record(logits, masks):
        loss = loss_fn(logits, masks)
        into.append(loss.item())
        return loss
    return loss_and_record


def compare_with_library(my_loop, seed=0):
    """Train one small U-Net from the same weights on the same 3 batches of 8 training images with my_loop
    and with minunet's train_one_epoch; return (each loop's batch losses, whether every weight is equal)."""
    items = [train_set[i] for i in range(24)]
    batches = []
    for k in (0, 8, 16):  # 3 batches of 8
        images = torch.stack([image for image, _, _ in items[k:k + 8]])  # (8, 3, S, S)
        masks = torch.stack([mask for _, mask, _ in items[k:k + 8]])  # (8, 1, S, S)
        batches.append((images.contiguous(memory_format=torch.channels_last), masks))  # the layout minunet uses
    torch.manual_seed(seed)
    mine = UNet(base_channels=8)
    library = copy.deepcopy(mine)  # the same starting weights
    my_losses, library_losses = [], []
    my_loop(mine, batches, recording(BCEJaccardLoss(), my_losses), torch.optim.Adam(mine.parameters(), lr=1e-3))
    train_one_epoch(library, batches, recording(BCEJaccardLoss(), library_losses),
                    torch.optim.Adam(library.parameters(), lr=1e-3))
    same = all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), library.state_dict().values()))
    return my_losses, library_losses, same


# %%
try:
    my_losses, library_losses, same_weights = compare_with_library(my_train_one_epoch)
    print(f"your losses:    {[round(x, 4) for x in my_losses]}")
    print(f"minunet's loop: {[round(x, 4) for x in library_losses]}")
    print(f"the same losses: {my_losses == library_losses}; the same weights afterwards: {same_weights}")
except AttributeError:  # `loss` is still `...`, which has no .item()
    print("my_train_one_epoch still has its `...` blanks: fill them in and run the two cells again")

# %% [markdown]
# ## The library's loop: `train_one_epoch`
#
# The function `fit` calls once per epoch, printed from the library itself (its docstring left out). It is
# your loop: forward, backward, step, and the loss kept for the log; around it, the device, mixed precision
# and the learning-rate schedule. The lines marked `*` serve runs that this tutorial does not make: skip them
# for now, the note after the walk-through says what they do.

# %%
ASIDE = ["scaler = scaler or", "finite_everywhere", "raise LossNotFinite", "scaler.update()", "if ema is",
         "ema.update("]  # the lines of the note below


def listing(function, aside):
    """Print `function`'s source with its line numbers, without its docstring, marking with * each line that
    holds one of the fragments `aside`."""
    lines = inspect.getsource(function).splitlines()
    doc = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0].body[0]  # the docstring's node
    for n, line in enumerate(lines, 1):
        if n == doc.lineno:
            print(f"{n:3d}   |     (docstring, lines {doc.lineno}-{doc.end_lineno}: help({function.__name__}))")
        elif not doc.lineno < n <= doc.end_lineno:
            print(f"{n:3d} {'*' if any(a in line for a in aside) else ' '} | {line}")


listing(train_one_epoch, ASIDE)
print("\nLine by line (the numbers are those of the listing above):")
walk(train_one_epoch, [
    ("net.train()", "Training mode. BatchNorm normalises each layer with the mean and variance of *this* "
     "batch and updates its running averages of them (evaluation mode uses those averages instead)."),
    ("enumerate(batches", "Any iterable of batches: `fit` passes its DataLoader (in a tqdm progress bar), the "
     "check above a list. The dataset's extra item, the image id, goes to `*_`."),
    ("memory_format=torch.channels_last", "The images go to the model's device, in the channels-last "
     "layout (B, H, W, C in memory) that convolutions run fastest in; the shape stays (B, 3, H, W)."),
    ("torch.autocast(", "Mixed precision: inside, convolutions run in `amp_dtype`, which "
     "`minunet.device.choose_device` picks once for every command: bfloat16 where the hardware computes it "
     "natively (a GPU that supports it, a CPU with AMX or AVX-512 BF16), float16 on an older CUDA GPU, else "
     "None (float32). Only the forward pass is inside."),
    ("loss = loss_fn(logits.float()", "The loss is computed in float32 from the logits: one number."),
    ("zero_grad", "Your step 3."),
    (".backward()", "Your step 4: backward (`scaler.scale(loss)` is the loss itself except in float16: see "
     "the note below)."),
    ("scaler.step(optimizer)", "Your step 5: the step (`optimizer.step()`, except in float16)."),
    ("scheduler.step()", "The learning rate for the next step: the schedule is per step, not per epoch."),
    ("total += loss.item()", "The log: each batch's loss is added up."),
    ("return total / step", "The epoch's training loss: the mean over its batches, which `fit` logs. It is "
     "taken while the weights were still changing and on augmented images, so it is not directly comparable "
     "to the validation loss."),
])
device, amp_dtype = choose_device("auto", "auto")
print(f"on this machine: device {device}, autocast dtype {amp_dtype}")

# %% [markdown]
# **Note: the lines marked `*`.** Each serves a kind of run that this tutorial does not make.
#
# - **A loss that is not a number** (`finite_everywhere`): a NaN or infinite loss stops the run with
#   `LossNotFinite` instead of training on garbage. Under `torchrun`, `net` is the model wrapped in
#   `DistributedDataParallel`, which averages the gradients of all processes during backward; every process
#   then checks the loss, so that all of them stop at the same step.
# - **float16** (the `GradScaler`): in float16, tiny gradients round to zero. With float16 autocast (an older
#   CUDA GPU) the scaler multiplies the loss before backward, divides the gradients back before the step,
#   skips a step whose gradients overflowed, and adapts its factor (`scaler.update()`). In any other
#   precision it is disabled: `scaler.scale(loss)` is the loss itself and `scaler.step(optimizer)` is
#   `optimizer.step()`.
# - **A moving average of the weights** (`ema`, `minunet train --ema 0.99`): after every step it takes the
#   new weights into an exponential moving average, which `fit` validates and keeps instead of the weights.

# %% [markdown]
# ## The DataLoader, and the steps of an epoch
#
# `fit` builds the loader with `make_loader`: batches of `batch_size` images in the sampler's order (seeded,
# a new order each epoch), with `drop_last=True`: a last short batch is dropped, so every step sees a full
# batch. Worker processes (on a GPU) read and augment the next batches while the model trains. An epoch
# therefore has `len(train_set) // batch_size` steps: count them on the loader, not by hand.

# %%
loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, drop_last=True)
batch_images, batch_masks, batch_ids = next(iter(loader))
print(f"one batch: images {tuple(batch_images.shape)}, masks {tuple(batch_masks.shape)}, ids {list(batch_ids[:3])} ...")
steps_per_epoch = len(loader)
print(f"{len(train_set)} images in batches of {BATCH}: {steps_per_epoch} steps an epoch, "
      f"{len(train_set) - steps_per_epoch * BATCH} images left out of each (different ones every epoch)")

# %% [markdown]
# ## The learning-rate schedule: `lr_factor`
#
# `fit` multiplies Adam's learning rate at every step by `lr_factor(step, warmup_steps, total_steps)`: it
# rises linearly during the *warm-up* (large steps on random weights can wreck BatchNorm's statistics),
# then falls along a cosine to zero at the last step, so the last epochs make small, careful steps. Drawn
# for the run below: its epochs, its steps per epoch.

# %%
print(inspect.getsource(lr_factor))
walk(optimiser, [
    ("warmup = ", "The warm-up is one epoch, at most a tenth of the run."),
    ("LambdaLR(", "PyTorch's scheduler calls lr_factor once per scheduler.step(), i.e. after every batch."),
])
total = steps_per_epoch * EPOCHS
warmup = max(1, min(steps_per_epoch, total // 10))  # as fit computes it
lr = Recipe().lr
print(f"{EPOCHS} epochs x {steps_per_epoch} steps = {total} steps, {warmup} of warm-up; learning rate "
      f"{lr * lr_factor(0, warmup, total):.2e} at the first step, {lr:.0e} at the end of the warm-up")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot([s / steps_per_epoch for s in range(total)], [lr * lr_factor(s, warmup, total) for s in range(total)], ".-")
ax.set(xlabel="epoch", ylabel="learning rate", title=f"lr_factor x {lr:g}: warm-up, then cosine decay")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "06_lr_schedule.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "06_lr_schedule.png"))

# %% [markdown]
# ## Validation without gradients, and the best epoch
#
# After each epoch `fit` scores the model on the validation split with `minunet.evaluation.evaluate`, the
# same function `minunet evaluate` uses, under `torch.no_grad()`: no graph is kept for a backward pass,
# which saves memory and time, and nothing can train by accident. The weights of the epoch with the best
# validation Dice so far are written to `best.pt` (tutorial 06b shows why the last epoch's are not enough).

# %%
walk(evaluate, [
    ("@torch.no_grad()", "Everything inside runs without recording gradients."),
    ("model.eval()", "Evaluation mode (BatchNorm's running averages), on the device."),
    ("model.train(was_training)", "Back to the mode the caller had."),
])
walk(fit, [
    ("sampler.set_epoch(epoch)", "This epoch's shuffle of the images and, through the dataset's set_epoch, its "
     "fresh, seeded augmentations."),
    ("train_loss = train_one_epoch(", "The loop above."),
    ("**validate(", "Validation loss, Dice and Jaccard (evaluate, in evaluation mode, without gradients)."),
    ("is_best, best_dice =", "Is this epoch's validation Dice the best so far? If so, the epoch handed to "
     "on_epoch carries its weights as the best: RunFolder writes them to best.pt, and last.pt, history.csv and "
     "curves.png after every epoch."),
])

# %% [markdown]
# ## `fit`: a real run
#
# `fit` runs the recipe of this library, `minunet.recipe.Recipe`: Adam, the schedule above, the BCE +
# Jaccard loss, validation after every epoch (the probabilities averaged over each image and its flips),
# the best epoch kept, and a seed that fixes the initial weights, the batch order and every augmentation.
# `Recipe()` is exactly what `minunet train` runs; here the epochs, batch size and image size are set
# (`fit` takes the model and the data as given: the recipe's model fields are what `minunet train` builds).
# `fit` writes no file itself: it hands each finished epoch to `on_epoch`. Here that is `RunFolder(RUN_DIR)`, what
# `minunet train` uses: it writes best.pt, last.pt, history.csv and curves.png into the run's folder.

# %%
recipe = Recipe(epochs=EPOCHS, batch_size=BATCH, size=SIZE)
print(recipe)
torch.manual_seed(0)
model = UNet(base_channels=recipe.base_channels)
print(f"UNet(base_channels={recipe.base_channels}): {sum(p.numel() for p in model.parameters()):,d} parameters; "
      f"{EPOCHS} epoch(s) into {os.path.relpath(RUN_DIR)}")
start = time.perf_counter()
history = fit(model, train_set, val_set, recipe, on_epoch=RunFolder(RUN_DIR))
seconds = time.perf_counter() - start

# %% [markdown]
# `fit` returns the history, one dict per epoch (the same rows as `history.csv`). Look for the training loss
# falling and the validation Dice rising and then levelling off. Its `lr` is the rate once the epoch is done,
# after its last step: the decay ends at 0, so the last epoch shows 0 although it trained at small rates.

# %%
print(f"{'epoch':>5s} {'lr':>9s} {'train loss':>10s} {'val loss':>9s} {'val Dice':>9s} {'val Jaccard':>11s}")
for r in history:
    print(f"{r['epoch']:5d} {r['lr']:9.2e} {r['train_loss']:10.4f} {r['val_loss']:9.4f} {r['val_dice']:9.4f} "
          f"{r['val_jaccard']:11.4f}")
best_row = max(history, key=lambda r: r["val_dice"])
print(f"best validation Dice {best_row['val_dice']:.4f} at epoch {best_row['epoch']} of {EPOCHS}; "
      f"{seconds:.0f} s for the run on this machine ({device})")
show(os.path.join(RUN_DIR, "curves.png"))

# %% [markdown]
# ## The best epoch's predictions
#
# `model` holds the *last* epoch's weights; `model_from_checkpoint(load_checkpoint(path))` rebuilds the best
# from `best.pt` (read safely: tensors and plain data only), in evaluation mode. `evaluate(..., pictures=True)`
# also returns the masks it scored: lesion where the probability, averaged over the image and its flips, is
# above 0.5.

# %%
best = model_from_checkpoint(load_checkpoint(os.path.join(RUN_DIR, "best.pt")))
scores = evaluate(best, val_set, runtime=Runtime(device), pictures=True)
print(f"best.pt on the {scores['count']} validation images: Dice {scores['dice']:.4f}, Jaccard {scores['jaccard']:.4f}")
picked = list(range(min(4, len(val_set))))
images, truths, preds = zip(*(scores["pictures"][i] for i in picked))  # each: image, true mask, scored mask
plot_cases(images, truths, preds, os.path.join(OUT, "06_unet_predictions.png"),
           titles=[f"{scores['ids'][i]} Dice {scores['per_image']['dice'][i]:.2f}" for i in picked])
show(os.path.join(OUT, "06_unet_predictions.png"))

# %% [markdown]
# The command line runs the same recipe: `minunet train --data synthetic --epochs 10 --out runs/unet` (for
# ISIC, `--data isic2016 --data-root DIR --epochs 20`); its other flags default to the recipe's fields.
# Next, tutorial 06b: what training curves look like when something is wrong.
#
# ## Exercises
#
# Answers: `tutorials/answers/06_train_unet.md`; the notebook runs them after its last cell. All three run in
# quick mode (`--quick`, on synthetic lesions: seconds), so that your numbers can be checked against the
# answers.
#
# 1. **Your loop.** *Quick mode.* Fill in `my_train_one_epoch` above until the check prints `True` twice. Then
#    leave out step 3 (`optimizer.zero_grad()`): which batch's loss is the first to differ, and why not
#    earlier?
# 2. **Counting steps.** *Quick mode.* For the notebook's full run on ISIC (674 training images, batches of
#    16, 20 epochs), how many optimiser steps does `fit` take, how many of them are warm-up, and what is the
#    learning rate at the first step and at the middle of the decay? Compute them with `DataLoader` and
#    `lr_factor`, not by hand.
# 3. **Overfit one batch.** *Quick mode.* Call your `my_train_one_epoch` five times on a list holding one
#    batch of 8 training images 20 times (`[(images, masks)] * 20`), with a fresh `UNet(base_channels=8)` and
#    Adam at a rate of 0.01. Where does the loss go? It is the first check to run on a new model or loop: one
#    that cannot learn 8 images by heart has a bug.
