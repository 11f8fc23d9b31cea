# %% [markdown]
# # 08 · Evaluating on held-out images, the failure report, and segmenting new files
#
# A trained model is judged on *held-out* images: images that played no part in training or in choosing the
# best epoch. The most telling come from another collection than the training images. For a model trained on
# ISIC 2016 these are ISIC 2017's 150 validation images, taken later, in more clinics. This tutorial
#
# - scores every checkpoint of tutorials 06, 07 and 07b it finds (none: it trains 06's U-Net first) on the
#   validation and the held-out images, and **prints** each model's spread over seeds, whether the two scores
#   differ by more than two standard errors, and whether a threshold chosen on validation holds on the
#   held-out images (sentences chosen by the code from the numbers); it **draws** both threshold curves
#   (`out/08_threshold_curves.png`);
# - writes the HTML failure report (`minunet evaluate --report`, `out/08_report/report.html`) and explains it;
#   segments JPEG files with `minunet.cli.predict.predict` and **draws** its masks (`out/08_predicted_files.png`).
#
# **How long it takes.** Seconds, with checkpoints at hand (else 06's training comes first). With no flag:
# synthetic lesions; `--data-root DIR`: ISIC 2016; `--quick`: the quick runs of 06, 07 and 07b; `--checkpoint FILE`:
# any checkpoint of `fit` or `minunet train`; `--held-out DIR`: ISIC 2017's folders (by default an `isic2017`
# folder beside the ISIC 2016 one).

# %%
import argparse
import glob
import os
import re
import sys

import torch
from PIL import Image

from minunet import UNet
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.cli import main as minunet_cli
from minunet.cli.predict import Output, predict
from minunet.cli.report import FLAGS
from minunet.cli.rundir import RunFolder
from minunet.data import DataError, make_dataset
from minunet.device import Runtime, choose_device
from minunet.evaluation import THRESHOLDS, best_threshold, evaluate
from minunet.inference import Inference
from minunet.recipe import Recipe
from minunet.training import fit
from minunet.transforms import pil_to_tensor

parser = argparse.ArgumentParser(description="Tutorial 08: evaluating, the failure report, predicting")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: "
                    "$MINUNET_DATA_ROOT, else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="the checkpoints of the quick runs of 06, 07 and 07b")
parser.add_argument("--checkpoint", metavar="FILE",
                    help="one best.pt or last.pt (default: every best.pt of tutorials 06, 07 and 07b in --out)")
parser.add_argument("--held-out", metavar="DIR", default=os.environ.get("MINUNET_HELD_OUT"),
                    help="ISIC 2017's challenge folders, another collection to score ISIC 2016's models on "
                    "(default: $MINUNET_HELD_OUT, else an isic2017 folder beside --data-root)")
parser.add_argument("--out", metavar="DIR", help="where figures, runs and files go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
MODE = f"{DATA}" + ("_quick" if args.quick else "")
if args.quick:  # tiny tensors: one thread beats several, which mostly wait for each other (by far on a busy machine)
    torch.set_num_threads(1)


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image as ShowImage, display
        display(ShowImage(filename=path))


# %% [markdown]
# ## The checkpoints
#
# A checkpoint written by `fit` holds the model's name and constructor arguments with its weights, and the image
# size and normalisation it was trained with: nothing else is needed to use it. `load_checkpoint` reads it with
# `torch.load(weights_only=True)`, which refuses files that would run code.

# %%
UNET_RUN = os.path.join(OUT, f"06_unet_{MODE}")
if args.checkpoint:
    paths = [args.checkpoint]
else:
    paths = sorted(glob.glob(os.path.join(OUT, f"07*_seed*_{MODE}", "best.pt")))  # 07's and 07b's
    paths = ([os.path.join(UNET_RUN, "best.pt")] if os.path.exists(os.path.join(UNET_RUN, "best.pt")) else []) + paths
    absent = [run for run in ("07_resunet34", "07b_resunet34") if paths and not any(run + "_" in p for p in paths)]
    if absent:  # a tutorial of the path not run into this --out: its models are missing from the comparison
        print(f"no {' or '.join(absent)} runs in {os.path.relpath(OUT)}: run tutorials 07 and 07b into the same "
              f"--out to score them too")
if not paths:
    print("no checkpoint from tutorial 07 or 06 here: training tutorial 06's U-Net first")
    size, batch = (32, 32) if args.quick else (128, 16)  # as tutorial 06
    torch.manual_seed(0)
    fit(UNet(base_channels=Recipe().base_channels),
        make_dataset(DATA, "train", root=args.data_root, size=size, augment=True, seed=0),
        make_dataset(DATA, "val", root=args.data_root, size=size),
        Recipe(epochs=3 if args.quick else 20 if DATA == "isic2016" else 10, batch_size=batch, size=size),
        on_epoch=RunFolder(UNET_RUN), log=None)
    paths = [os.path.join(UNET_RUN, "best.pt")]


def run_name(path, state):
    """The model's name in the folder names of tutorials 06, 07 and 07b (unet, resunet34, ...), else the checkpoint's."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    found = re.fullmatch(rf"0[67]b?_(.+?)(_seed\d+)?_{MODE}", folder)
    if found and folder.startswith("06_") and os.path.isdir(os.path.join(OUT, f"07_unet_seed0_{MODE}")):
        return "unet (06)"  # 07 trained its own seed 0: 06's run is another recipe (20 epochs on ISIC), not a seed
    return found.group(1) if found else state.model


device, _ = choose_device("auto")  # the GPU when there is one
runtime = Runtime(device, batch_size=64)  # 64 images per forward pass: fewer, larger passes run faster
checkpoints = []
for path in paths:
    state = load_checkpoint(path)
    checkpoints.append(dict(path=path, state=state, model=model_from_checkpoint(state).to(device),
                            name=run_name(path, state)))
    print(f"{os.path.relpath(path)}: {state.model} {state.model_args}, {state.size[0]} px, "  # size: (H, W), square
          f"best epoch {state.epoch}, best validation Dice {state.best_dice:.4f}")

# %% [markdown]
# ## Validation and held-out scores
#
# The held-out images are the best at hand. For ISIC 2016's models: ISIC 2017's validation images, another
# collection, read from `--held-out DIR` (the challenge's folders). A collection can hold images of another:
# those that are also in ISIC 2016's training split, found by name, are left out. Without ISIC 2017: the test
# split, held out but from the training images' own collection. Without that too (the ISIC 2016 folders at
# hand have no test split): the validation split, which is then no longer held out.
#
# Each checkpoint is scored on the validation and the held-out images. As the challenge scores, each
# prediction is compared with the ground truth *at the mask's own resolution*: the probabilities are resized
# to the original mask's size and thresholded there. `evaluate` also returns the mean Dice at each decision
# threshold from 0.05 to 0.95 (`dice_by_threshold`; a pixel above the threshold is lesion).
#
# Three numbers per checkpoint tell what the validation score was worth:
#
# - **val Dice**, at the epoch chosen on validation: optimistic, since that epoch won on these images;
# - **held-out Dice** at threshold 0.5: an honest estimate of the score on new images of the held-out kind;
# - **held-out Dice at the threshold chosen on validation**: a threshold is a setting like the epoch, chosen on
#   validation (`best_threshold`) and only *applied* to held-out images (chosen on them, it would flatter them).


# %%
def beside(root, name):
    """The folder `name` next to the folder `root`, when there is one (else None)."""
    folder = os.path.join(root or "", os.pardir, name)  # e.g. ../shared/data/isic2016/../isic2017
    return folder if root and os.path.isdir(folder) else None


size = checkpoints[0]["state"].size  # (H, W)
val_set = make_dataset(DATA, "val", root=args.data_root, size=size)
held_out = None
if DATA == "isic2016":  # ISIC 2016's models: ISIC 2017's validation images are another collection
    folder = args.held_out or beside(args.data_root, "isic2017")
    if folder is None:
        print("no isic2017 folder beside the data root, and no --held-out DIR: the held-out images come from "
              "ISIC 2016 itself")
    else:
        try:
            held_out, source = make_dataset("isic2017", "val", root=folder, size=size), ("isic2017", folder, "val")
        except DataError as err:
            print(f"no ISIC 2017 validation images ({err}): the held-out images come from ISIC 2016 itself")
    if held_out is not None:
        trained_on = set(make_dataset(DATA, "train", root=args.data_root, size=32).ids)  # only the names matter
        seen = [k for k, name in enumerate(held_out.ids) if name in trained_on]
        if seen:
            print(f"{len(seen)} of ISIC 2017's {len(held_out)} validation images are in ISIC 2016's training split "
                  f"too ({', '.join(held_out.ids[k] for k in seen)}): left out of the held-out images")
            held_out = held_out.subset([k for k in range(len(held_out)) if k not in seen])
if held_out is None:
    try:
        held_out, source = make_dataset(DATA, "test", root=args.data_root, size=size), (DATA, args.data_root, "test")
    except DataError as err:  # e.g. the challenge folders at hand have no test images
        held_out, source = val_set, (DATA, args.data_root, "val")
        print(f"no test split ({err}).\nScoring the validation split as 'held-out': it is NOT held out (the epoch "
              f"and the threshold below are chosen on it), so every score below is optimistic.")
HELD_DATA, HELD_ROOT, HELD_SPLIT = source  # what `minunet evaluate` takes: --data, --data-root, --split
HELD_NAME = "ISIC 2017 validation" if HELD_DATA == "isic2017" else f"{HELD_DATA} {HELD_SPLIT}"
print(f"{len(val_set)} validation images of {DATA}; held out: {len(held_out)} {HELD_NAME} images\n")
print(f"{'checkpoint':50s} {'val Dice':>8s} {'held-out Dice (0.5)':>19s} {'val-chosen threshold':>20s} "
      f"{'held-out Dice at it':>19s}")
for c in checkpoints:
    if c["state"].size != size:
        raise SystemExit(f"{c['path']} was trained at {c['state'].size} px, the others at {size}: "
                         f"score checkpoints of one size together")
    val_scores = evaluate(c["model"], val_set, runtime=runtime)
    c["val"], c["threshold"] = val_scores["dice"], best_threshold(val_scores["dice_by_threshold"])
    c["val_per_image"] = val_scores["per_image"]["dice"]  # (N,)
    c["val_curve"] = val_scores["dice_by_threshold"]
    c["scores"] = evaluate(c["model"], held_out, runtime=runtime)
    c["tuned"] = c["scores"]["dice_by_threshold"][c["threshold"]]
    print(f"{os.path.relpath(c['path'], OUT):50s} {val_scores['dice']:8.4f} {c['scores']['dice']:19.4f} "
          f"{c['threshold']:20.2f} {c['tuned']:19.4f}")

# %% [markdown]
# Per model, over its seeds: the mean and range of the held-out Dice, the mean gap between the two scores
# (validation minus held-out Dice), and the mean change from the tuned threshold. A gap larger than two
# standard errors is said to be one. Between two collections it holds two things at once: the validation
# score's optimism and the change of collection. Where 07 trained its own U-Net seed 0, 06's run (20 epochs
# on ISIC, not 10) stands apart as "unet (06)"; after 07's quick run, one seed per model, a range is that one
# score.

# %%
by_model = {}
for c in checkpoints:
    by_model.setdefault(c["name"], []).append(c)
for name, group in by_model.items():
    held = [c["scores"]["dice"] for c in group]
    gap = sum(c["val"] - c["scores"]["dice"] for c in group) / len(group)
    gain = [c["tuned"] - c["scores"]["dice"] for c in group]
    a, b = group[0]["val_per_image"], group[0]["scores"]["per_image"]["dice"]  # (N,), (M,) per-image Dice
    error = (a.var() / len(a) + b.var() / len(b)).sqrt().item()  # std. error of a difference of the two means
    print(f"{name:16s} {len(group)} checkpoint(s): held-out Dice mean {sum(held) / len(held):.4f}, range "
          f"{min(held):.4f} to {max(held):.4f}; validation minus held-out: mean {gap:+.4f}; "
          f"tuned threshold minus 0.5: mean {sum(gain) / len(held):+.4f}")
    if held_out is val_set:
        pass  # the same images: nothing to compare
    elif abs(gap) < 2 * error:
        print(f"{'':16s} within two standard errors ({error:.4f}) of a difference between {len(a)} and {len(b)} "
              f"images: these sets are too small to measure a gap")
    elif gap > 0 and HELD_DATA != DATA:
        print(f"{'':16s} a gap: the {HELD_NAME} images scored {gap:.4f} lower, more than two standard errors "
              f"({error:.4f}): the validation score's optimism and the change of collection together; report "
              f"the held-out score")
    elif gap > 0:
        print(f"{'':16s} the validation score was optimistic by {gap:.4f}, more than two standard errors "
              f"({error:.4f}): report the held-out score")
    else:
        print(f"{'':16s} the held-out images scored higher, by {-gap:.4f}, more than two standard errors "
              f"({error:.4f}): these held-out images are easier; the optimism is hidden under that")
    if len(group) > 1 and min(gain) < 0 < max(gain):
        print(f"{'':16s} the tuned threshold helped some seeds and hurt others on held-out images: no gain to claim")

# %% [markdown]
# The threshold curves of the checkpoint with the best validation Dice (chosen on validation; the held-out
# score is then only reported), with the threshold chosen on validation. A flat curve: the model is sure of its
# pixels, the threshold barely matters. A peak far from 0.5: its probabilities are biased (too timid, or too
# eager). A sharp spike at 0.5, Dice collapsing on both sides: nearly every probability sits near 0.5, a model
# that has barely started to separate lesion from skin. The vertical distance between the curves is the gap
# above; where their peaks differ, the threshold chosen on validation does not suit the held-out images.

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

chosen = max(checkpoints, key=lambda c: c["state"].best_dice)
fig, ax = plt.subplots(figsize=(6.4, 3.4))
ax.plot(THRESHOLDS, [chosen["val_curve"][t] for t in THRESHOLDS], "o-", markersize=3,
        label=f"validation ({len(val_set)} images of {DATA})")
ax.plot(THRESHOLDS, [chosen["scores"]["dice_by_threshold"][t] for t in THRESHOLDS], "o-", markersize=3,
        label=f"held-out ({len(held_out)} {HELD_NAME} images)")
ax.axvline(chosen["threshold"], color="tab:red", linestyle="--", label=f"chosen on validation: {chosen['threshold']:g}")
ax.set(xlabel="threshold (probability above it is lesion)", ylabel="mean Dice", xlim=(0, 1),
       title=os.path.relpath(chosen["path"], OUT))
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "08_threshold_curves.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "08_threshold_curves.png"))
curve = chosen["scores"]["dice_by_threshold"]
middle = [curve[t] for t in THRESHOLDS if 0.3 <= t <= 0.7]
spread = max(middle) - min(middle)
print(f"from threshold 0.3 to 0.7 the held-out Dice moves by {spread:.4f}: "
      + ("flat, the threshold barely matters" if spread < 0.02 else "not flat, the threshold matters"))
t = chosen["threshold"]
sweep = chosen["scores"]["dice_sweep"]  # (M, len(THRESHOLDS)): each held-out image's Dice at each threshold
change = sweep[:, THRESHOLDS.index(t)] - sweep[:, THRESHOLDS.index(0.5)]  # (M,) per image: t minus 0.5
error = change.std().item() / len(change) ** 0.5  # the standard error of a paired difference
if t == 0.5:
    print("the threshold chosen on validation is 0.5 itself: nothing to carry over")
else:
    print(f"{t:g} instead of 0.5 changed the validation Dice by {chosen['val_curve'][t] - chosen['val_curve'][0.5]:+.4f} "
          f"and the held-out Dice by {curve[t] - curve[0.5]:+.4f} (standard error {error:.4f})")
    if held_out is val_set:
        print("the same images twice: this says nothing about new ones")
    elif abs(curve[t] - curve[0.5]) < 2 * error:
        print("on the held-out images that is within two standard errors: no gain or loss to claim")
    elif curve[t] > curve[0.5]:
        print("more than two standard errors: the threshold chosen on validation carried over to the held-out images")
    else:
        print("more than two standard errors, the wrong way: the threshold chosen on validation does not suit "
              "the held-out images")

# %% [markdown]
# ## Two kinds of held out
#
# Held-out images of the training collection (a test split, or the folds of a cross-validation) are new to the
# model, but not new in kind: ISIC 2016's splits were cut from one pool of images, from a few clinics and
# cameras. A later collection from more clinics is what a model meets in use. The gap printed above mixes the
# validation score's optimism with the change of collection; bench/RESULTS.md ("A newer collection: ISIC 2017's
# validation images") measured the change alone, with no epoch chosen on either set. The ResNet-34 U-Net with
# the default recipe, trained from scratch on each half of the 749 ISIC 2016 images at hand and scored on the
# other half, reached a held-out Dice of 0.909 (mean of three seeds); the same models scored 0.798 on ISIC
# 2017's 150 validation images (all 150: 3 of them are ISIC 2016 training images, which this tutorial leaves
# out, so up to 3 had been trained on): 0.11 lower, far beyond the standard errors. The seed moved that score
# 2.5 to 17 times more than the folds' (standard deviation 0.0050 against 0.0020 for this recipe, 0.0105 against
# 0.0006 for 0.1.0's). Data did what no recipe option did: 949 ISIC 2017 training images added to a fold's 374
# raised its newer Jaccard from 0.698 to 0.780. A split of the training collection measures the fit to that
# collection: keep a test set from another source.

# %% [markdown]
# ## The failure report
#
# A mean hides the spread: most images are segmented well, a few fail badly, and those are the ones to look
# at (faint lesions, lesions larger than the picture, hair, rulers, ink marks, dark corners). `minunet evaluate
# --report DIR` writes `DIR/report.html`, one page with every picture inside (it opens offline and travels as
# one file), and `DIR/per_image.csv`, one row per image. Its flags:

# %%
try:
    minunet_cli(["evaluate", "--help"])  # the CLI's own help, as `minunet evaluate --help` prints it
except SystemExit:  # argparse exits after printing the help
    pass

# %% [markdown]
# It runs here through `minunet.cli.main`, the function behind the `minunet` command (the line it prints is
# the same command in a terminal), on the held-out split, with the checkpoint above and the threshold chosen
# on validation (`--threshold`; else the one `minunet train --tune-threshold` stored, else 0.5); it averages
# each image's prediction over its flips (`--no-tta` turns that off). It scores every image of the split,
# including any left out above.

# %%
report_dir = os.path.join(OUT, "08_report")
command = ["evaluate", "--checkpoint", chosen["path"], "--data", HELD_DATA, "--split", HELD_SPLIT,
           "--threshold", str(chosen["threshold"]), "--report", report_dir]
command += ["--data-root", HELD_ROOT] if HELD_ROOT else []
print("minunet " + " ".join(command))
exit_code = minunet_cli(command)
assert exit_code == 0, f"minunet evaluate exited {exit_code}"
with open(os.path.join(report_dir, "report.html"), encoding="utf-8") as f:
    page = f.read()
sections = re.findall(r"<h([23])>(.*?)</h\1>", page)
print(f"\n{os.path.relpath(os.path.join(report_dir, 'report.html'))}: {len(page) / 1024:.0f} KiB, sections:")
for level, title in sections:
    print(("  " if level == "2" else "      ") + re.sub(r"<[^>]+>", "", title))

# %% [markdown]
# What each section shows (open the page in a browser beside this list):
#
# - **Run**: the checkpoint, model, training, data, split, threshold, and whether `--tta` and
#   `--postprocess` were on. **ISIC metrics**: the six means, each defined from the pixel counts (TP lesion
#   found, FP false alarm, FN lesion missed, TN skin left alone).
# - **Per-image Dice**: a histogram, with the failure line at the Dice that equals Jaccard 0.65 (the
#   challenge's threshold: images left of it score 0 in threshold Jaccard).
# - **Dice against lesion size**: one dot per image; failures often gather at the small lesions.
# - **Dice against the decision threshold**: the held-out curve above; choose on validation.
# - **Worst and best images**: image, ground truth, prediction and an overlay coloured by what went wrong
#   (green lesion found, blue lesion missed, red false alarm), with each image's scores and areas.
# - **Flagged images**: each flag of `minunet.cli.report.FLAGS`, its meaning, its images and their overlays:

# %%
for name, sentence in FLAGS.items():
    print(f"  {name}: {sentence}")
with open(os.path.join(report_dir, "per_image.csv")) as f:
    rows = f.read().splitlines()
print(f"\nper_image.csv: {len(rows) - 1} rows; the first lines:")
print("\n".join(rows[:3]))

# %% [markdown]
# ## Segmenting new image files
#
# In use, a model meets photographs of any size: here a few held-out images written as 300 x 225 JPEG files,
# plus one broken file. `predict(model, paths, out_dir, inference)` reads each file, resizes and normalises it
# as in training (`Inference.of_checkpoint` reads both from the checkpoint), runs the model (BatchNorm folded
# into the convolutions), resizes the probabilities back to the file's size, and writes `<name>_Segmentation.png`
# (0 skin, 255 lesion: the challenge's format) and, with `Output(overlay=True)`, the mask over the photograph.
# A file it cannot read is reported and skipped. `minunet predict --report DIR` reports the masks (nothing
# scored: there is no truth) and flags empty and full ones.

# %%
model, state = chosen["model"], chosen["state"]
new_dir = os.path.join(OUT, "08_new_images")
masks_dir = os.path.join(OUT, "08_predicted_masks")
os.makedirs(new_dir, exist_ok=True)
paths = []
for i in range(min(3, len(held_out))):
    pixels = held_out.images[i]  # (3, S, S) uint8: the image as stored, before normalisation
    picture = Image.frombytes("RGB", (pixels.shape[2], pixels.shape[1]),
                              bytes(pixels.permute(1, 2, 0).flatten().tolist()))  # (H, W, 3) bytes
    paths.append(os.path.join(new_dir, f"{held_out.ids[i]}.jpg"))
    picture.resize((300, 225), Image.BILINEAR).save(paths[-1], quality=92)
broken = os.path.join(new_dir, "broken.jpg")
with open(broken, "wb") as f:
    f.write(b"this is not a JPEG")
paths.append(broken)

inference = Inference.of_checkpoint(state, threshold=chosen["threshold"])
result = predict(model, paths, masks_dir, inference, runtime, Output(overlay=True, overwrite=True))
written, skipped = result["written"], [path for path, _ in result["skipped"]]
print(f"wrote {written} masks to {os.path.relpath(masks_dir)}; skipped {[os.path.basename(p) for p in skipped]}")
for p in paths[:written]:
    stem = os.path.splitext(os.path.basename(p))[0]
    mask_file = Image.open(os.path.join(masks_dir, f"{stem}_Segmentation.png"))
    m = pil_to_tensor(mask_file, mode="L")  # (1, H, W) uint8
    print(f"  {stem}_Segmentation.png: {mask_file.size[0]}x{mask_file.size[1]} mode {mask_file.mode}, "
          f"values {torch.unique(m).tolist()}, lesion {(m > 127).float().mean():.1%}")

# %%
fig, axes = plt.subplots(2, written, figsize=(3 * written, 5), squeeze=False)
for c, p in enumerate(paths[:written]):
    stem = os.path.splitext(os.path.basename(p))[0]
    for r, (name, folder) in enumerate([(f"{stem}.jpg", new_dir), (f"{stem}_overlay.png", masks_dir)]):
        picture = pil_to_tensor(Image.open(os.path.join(folder, name)), mode="RGB")  # (3, H, W) uint8
        axes[r][c].imshow(picture.permute(1, 2, 0).tolist())
        axes[r][c].set_title(name, fontsize=8)
        axes[r][c].set_axis_off()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "08_predicted_files.png"), dpi=90)
plt.close(fig)
show(os.path.join(OUT, "08_predicted_files.png"))

# %% [markdown]
# The same from the command line:
#
#     minunet evaluate --checkpoint runs/resunet34/best.pt --data isic2016 --data-root DIR --split val
#     minunet evaluate --checkpoint runs/resunet34/best.pt --data isic2017 --data-root DIR2017 --split val --report rep/
#     minunet predict --checkpoint runs/resunet34/best.pt --input photos/ --output masks/ --overlay --report rep2/
#
# Next, tutorial 09: the same path for your own images and masks.
#
# ## Exercises
#
# Answers: `tutorials/answers/08_evaluate_and_predict.md`; the notebook runs them after its last cell. All
# three run in quick mode (`--quick`, on synthetic lesions), so that your numbers can be checked against the
# answers; the full run's differ.
#
# 1. **One pass instead of four.** *Quick mode.* Score tutorial 06's U-Net on the held-out split with
#    `Inference(tta=False)` (one forward pass per image) and with the default (the mean over the image and its
#    three flips). Is the difference larger than its standard error over the images?
# 2. **Keep the largest region.** *Quick mode.* Score it again with `Inference(postprocess=True)` (keep each
#    mask's largest region, fill its holes). How many images does it change, and which way?
# 3. **Choosing on the test split.** *Quick mode.* Choose the threshold on the held-out split itself
#    (`best_threshold(unet["scores"]["dice_by_threshold"])`, `unet` being 06's checkpoint) and compare its
#    held-out Dice with the one chosen on validation. Why can it never be lower, and why is it not a result?
