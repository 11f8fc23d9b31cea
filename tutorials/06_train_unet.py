# %% [markdown]
# # 06 · Training a U-Net
#
# Everything so far comes together: the data (01) with its augmentation (02) feeds a U-Net (03), whose
# output is scored by BCE + Dice (05); an optimiser nudges the weights to lower that loss, batch after
# batch, and after every *epoch* (one pass over the training images) the model is scored on the
# validation images it never trains on. This tutorial first does one training step by hand, to show what
# happens inside, then trains with `minunet.train.fit`, **prints** the loss and validation Dice of every
# epoch, and **draws** the training curves (`out/06_unet_<data>/curves.png`) and a few validation
# predictions (`out/06_unet_predictions.png`). The run's checkpoints (`best.pt`, `last.pt`) stay in
# `out/06_unet_<data>/` for tutorials 07 and 08.
#
# **How long it takes.** `--quick`: under 20 s on 2 CPU cores (a tiny U-Net, 8 images, 1 epoch).
# Without it, on synthetic lesions (200 training images at 128 px, a U-Net of width 32, 10 epochs): about
# 5 minutes on a 2-core CPU (estimated from its measured speed on ISIC, 4.4 to 7.9 training images/s),
# 25 s on one NVIDIA H200 GPU (measured; validation Dice 0.976). With `--data-root` on ISIC 2016 (674
# training images, 20 epochs): 38 minutes on a 2-core CPU (measured: bench/RESULTS.md, validation Dice
# 0.919), 55 s on the H200 (measured; validation Dice 0.917). A GPU is used automatically when PyTorch sees one.
#
# Run with no arguments (synthetic lesions), `--data-root DIR` (ISIC 2016), or `--quick`; `--epochs N`
# and `--base-channels C` change the run.

# %%
import argparse
import os
import sys
import time

import torch

from minunet import UNet
from minunet.data import make_dataset
from minunet.losses import BCEDiceLoss
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.evaluation import evaluate
from minunet.train import fit

parser = argparse.ArgumentParser(description="Tutorial 06: training a U-Net")
parser.add_argument("--data-root", metavar="DIR",
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="tiny model, few images, 1 epoch: a smoke run in seconds")
parser.add_argument("--epochs", type=int, help="epochs (default 10 on synthetic lesions, 20 on ISIC, 1 with --quick)")
parser.add_argument("--base-channels", type=int, help="the U-Net's width (default 32, 8 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where figures and runs go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
SIZE = 64 if args.quick else 128
LIMIT = 8 if args.quick else None  # at most this many images per split (8: one batch)
EPOCHS = args.epochs or (1 if args.quick else 20 if DATA == "isic2016" else 10)
BASE = args.base_channels or (8 if args.quick else 32)
BATCH = 8 if args.quick else 16
RUN_DIR = os.path.join(OUT, f"06_unet_{DATA}" + ("_quick" if args.quick else ""))


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=path))


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
# the same batch, the loss falls: that is all learning is. `fit` does exactly this over every batch of
# every epoch, plus the bookkeeping.

# %%
torch.manual_seed(0)
demo = UNet(base_channels=8)
optimizer = torch.optim.Adam(demo.parameters(), lr=1e-3)
loss_fn = BCEDiceLoss()
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
# ## Training with `fit`
#
# The recipe: Adam with a learning rate that rises linearly over the first epoch (a *warm-up*: large steps
# on random weights can wreck BatchNorm's statistics) and then decays along a cosine to zero; batches of
# 16; the BCE + Dice loss; after each epoch, the validation loss and the ISIC Dice and Jaccard. The epoch
# with the best validation Dice is saved as `best.pt` (the weights to keep: later epochs can overfit),
# every epoch as `last.pt` (to resume an interrupted run), with `history.csv` and `curves.png` beside them.
# A seed fixes the initial weights, the batch order and every augmentation, so a rerun repeats.
#
# The U-Net here has width 32 (7.8 million parameters): the classic width 64 is four times the work for
# little gain on 128 px images. On a CPU, `fit` uses all cores; on a GPU, mixed precision.

# %%
torch.manual_seed(0)
model = UNet(base_channels=BASE)
print(f"UNet(base_channels={BASE}): {sum(p.numel() for p in model.parameters()):,d} parameters; "
      f"{EPOCHS} epoch(s) into {os.path.relpath(RUN_DIR)}")
start = time.perf_counter()
history = fit(model, train_set, val_set, RUN_DIR, epochs=EPOCHS, batch_size=BATCH, lr=1e-3, seed=0)
seconds = time.perf_counter() - start
print(f"{seconds:.0f} s in all ({seconds / 60:.1f} min), {sum(r['train_seconds'] for r in history):.0f} s of it "
      f"training at {sum(r['train_images_per_s'] for r in history) / len(history):.1f} images/s")

# %% [markdown]
# `fit` returns the history, one dict per epoch (the same rows as `history.csv`). Look for the training loss
# falling steadily and the validation Dice rising and then levelling off. A validation loss that turns
# back up while the training loss keeps falling is *overfitting*: the model starts memorising the training
# images. With `--quick` (one epoch on 8 images) the model has barely started: expect a low Dice.

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
# it describes, weights included, in evaluation mode. `evaluate` scores it with the ISIC metrics, each
# prediction thresholded at probability 0.5 (logit 0).

# %%
best = model_from_checkpoint(load_checkpoint(os.path.join(RUN_DIR, "best.pt")))
scores = evaluate(best, val_set, device="cpu", per_image=True)
print(f"best epoch {max(history, key=lambda r: r['val_dice'])['epoch']}: validation Dice {scores['dice']:.4f}, "
      f"Jaccard {scores['jaccard']:.4f} over {scores['count']} images")

from minunet.plots import plot_cases  # noqa: E402

picked = list(range(min(4, len(val_set))))
images = [val_set[i][0] for i in picked]
with torch.no_grad():
    preds = [(best(image[None])[0] > 0).float() for image in images]  # logit > 0 <=> probability > 0.5
plot_cases(images, [val_set[i][1] for i in picked], preds, os.path.join(OUT, "06_unet_predictions.png"),
           titles=[f"{val_set[i][2]} Dice {scores['per_image']['dice'][i]:.2f}" for i in picked])
show(os.path.join(OUT, "06_unet_predictions.png"))

# %% [markdown]
# The same run from the command line: `minunet train --model unet --base-channels 32 --epochs 10 --out runs/unet`
# (add `--data isic2016 --data-root DIR` for ISIC). Next, tutorial 07: the same training with the ResNet-34
# encoder, and the two models compared.
