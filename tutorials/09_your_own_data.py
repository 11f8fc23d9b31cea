# %% [markdown]
# # 09 · Your own images and masks
#
# Everything so far used ISIC 2016 or synthetic lesions. This tutorial takes the path a user takes with
# their own data: a folder of photographs and masks becomes a dataset, is checked, trained on and used. It
#
# - writes such a folder, laid out as minunet reads it: `DIR/images/<name>.jpg` and `DIR/masks/<name>.png`
#   (0 = background, 255 = lesion), from synthetic lesions (or, with `--data-root`, from ISIC 2016's
#   files), and **prints** what it holds;
# - reads it with `make_dataset("folder", ...)` and **prints** the checks: image and mask sizes, mask
#   values, the errors minunet gives for a missing or misnamed mask, and the *0/1 trap* (a mask saved with
#   values 0 and 1, which looks all black): the note minunet prints, and what such a mask looks like
#   (**drawn** in `out/09_mask_trap.png`);
# - trains a U-Net on it with `minunet train --data folder` and segments new photographs with
#   `minunet predict`, **drawing** them (`out/09_predictions.png`);
# - shows what to check when a prediction is all black (or all lesion), on a run stopped far too early, and
#   how to choose the threshold on validation (**drawn**: `out/09_threshold_curve.png`); what the numbers
#   say is written by the code from them.
#
# **How long it takes.** The training dominates: `minunet train`'s U-Net (width 16) on the folder's 180
# training images, 3 epochs at 32 px with `--quick` (seconds), else 10 epochs at 128 px (bench/RESULTS.md,
# "Tutorials"). Run with no arguments (synthetic lesions), `--data-root DIR` (ISIC 2016's challenge folders:
# their files are copied into the folder layout), or `--quick`. Exercises at the end; answers in
# `tutorials/answers/09_your_own_data.md`.

# %%
import argparse
import os
import shutil
import sys

import torch
from PIL import Image

from minunet import UNet
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.cli import main as minunet_cli
from minunet.data import TRAIN_IMAGES, TRAIN_MASKS, DataError, make_dataset, read_image, read_mask
from minunet.data.synthetic import synthetic_split
from minunet.evaluation import THRESHOLDS, best_threshold, evaluate
from minunet.inference import probabilities
from minunet.recipe import Recipe
from minunet.training import fit
from minunet.transforms import pil_to_tensor, tensor_to_pil

parser = argparse.ArgumentParser(description="Tutorial 09: your own images and masks")
parser.add_argument("--data-root", metavar="DIR", default=os.environ.get("MINUNET_DATA_ROOT"),
                    help="ISIC 2016's challenge folders, whose files fill the folder (default: $MINUNET_DATA_ROOT, "
                    "else synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="training at 32 px for 3 epochs: a run of seconds")
parser.add_argument("--epochs", type=int, help="epochs (default 10, 3 with --quick)")
parser.add_argument("--out", metavar="DIR", help="where the folder, runs and figures go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
N_IMAGES = 200  # in the folder (train and val are carved from it, 90/10)
N_NEW = 3  # new photographs to segment
SIZE, BATCH = (32, 16) if args.quick else (128, 16)  # the working size, the batch size
EPOCHS = args.epochs or (3 if args.quick else 10)
DIR = os.path.join(OUT, "09_my_data")
if args.quick:  # tiny tensors: one thread beats several, which mostly wait for each other (by far on a busy machine)
    torch.set_num_threads(1)


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image as ShowImage, display
        display(ShowImage(filename=path))


# %% [markdown]
# ## The folder
#
# minunet reads your own data from one folder holding two subfolders:
#
#     DIR/images/ID.jpg     (.jpeg and .png too; any size, each image its own)
#     DIR/masks/ID.png      the mask of ID.jpg: same width and height, 0 = background, 255 = lesion
#
# (and `DIR/test/images/`, `DIR/test/masks/` for a test split, if you have one). Image and mask are paired
# by name. Here the folder is written by the tutorial: synthetic lesions saved as JPEG photographs at
# 160 x 120 pixels with their masks as PNG files (a mask must be PNG: JPEG's compression would blur its
# edges into grey levels), or, with `--data-root`, ISIC 2016 files copied and renamed into this layout.
# A few more photographs, with no mask, stand in for the new images to segment at the end.

# %%
shutil.rmtree(DIR, ignore_errors=True)
for sub in ("images", "masks", "new_photos"):
    os.makedirs(os.path.join(DIR, sub))
if args.data_root:
    source = os.path.join(args.data_root, TRAIN_IMAGES)
    ids = sorted(name[:-4] for name in os.listdir(source) if name.endswith(".jpg"))[:N_IMAGES + N_NEW]
    for i, id_ in enumerate(ids):
        if i < N_IMAGES:
            shutil.copy(os.path.join(source, id_ + ".jpg"), os.path.join(DIR, "images", id_ + ".jpg"))
            shutil.copy(os.path.join(args.data_root, TRAIN_MASKS, id_ + "_Segmentation.png"),
                        os.path.join(DIR, "masks", id_ + ".png"))  # ISIC's ID_Segmentation.png -> ID.png
        else:
            shutil.copy(os.path.join(source, id_ + ".jpg"), os.path.join(DIR, "new_photos", id_ + ".jpg"))
else:
    for split, n, folder in (("train", N_IMAGES, "images"), ("test", N_NEW, "new_photos")):
        pixels, truth, ids = synthetic_split(split, 128, n)  # (n, 3, 128, 128) uint8, (n, 1, 128, 128) in {0, 1}
        for image, mask, id_ in zip(pixels, truth, ids):
            name = id_.replace("synthetic_", "lesion_")
            tensor_to_pil(image).resize((160, 120), Image.BILINEAR).save(os.path.join(DIR, folder, name + ".jpg"),
                                                                         quality=92)
            if folder == "images":  # masks resized by nearest neighbour: still only 0 and 255 (tutorial 02)
                tensor_to_pil(mask * 255).resize((160, 120), Image.NEAREST).save(os.path.join(DIR, "masks",
                                                                                             name + ".png"))
for sub in ("images", "masks", "new_photos"):
    names = sorted(os.listdir(os.path.join(DIR, sub)))
    print(f"{os.path.relpath(os.path.join(DIR, sub))}/: {len(names)} files: {', '.join(names[:2])}, ...")

# %% [markdown]
# ## Checking it
#
# Before training, look at what is there. `minunet.data.read_image` and `read_mask` read one file as
# minunet does (the mask's values decided per file: "0/255", "0/1", "grey", "empty", or a label map such as
# "0/2" (2 is lesion) or "0/1/2" (classes: refused for a split)); a loop over the pairs finds the sizes and
# the kinds of mask at a glance.

# %%
kinds, sizes, mismatched = {}, {}, []
for name in sorted(os.listdir(os.path.join(DIR, "images"))):
    stem = os.path.splitext(name)[0]
    image = read_image(os.path.join(DIR, "images", name))  # (3, H, W) uint8
    mask, kind = read_mask(os.path.join(DIR, "masks", stem + ".png"))  # (1, H, W) in {0, 1}, and its kind
    kinds[kind] = kinds.get(kind, 0) + 1
    sizes[tuple(image.shape[1:])] = sizes.get(tuple(image.shape[1:]), 0) + 1
    if image.shape[1:] != mask.shape[1:]:
        mismatched.append(stem)
print(f"image sizes (H, W): {sizes}; masks by kind: {kinds}; pairs of different sizes: {mismatched or 'none'}")

# %% [markdown]
# `make_dataset("folder", split, root=DIR, size=...)` reads the same folder as `minunet train --data folder
# --data-root DIR`: train and val are a fixed 90/10 split of the sorted names (the same on every machine),
# every image and mask resized to the working size once. It refuses, with a message naming the file and what
# to do, a mask that is missing, misnamed, of another size than its image, in colour, or unreadable. Two
# of those messages, from a scratch copy of the folder:

# %%
train_set = make_dataset("folder", "train", root=DIR, size=SIZE, augment=True)
val_set = make_dataset("folder", "val", root=DIR, size=SIZE)
print(f"{len(train_set)} training and {len(val_set)} validation images at {SIZE} x {SIZE}; "
      f"notes: {train_set.notes or 'none'}")

scratch = os.path.join(OUT, "09_scratch")
shutil.rmtree(scratch, ignore_errors=True)
shutil.copytree(DIR, scratch, ignore=shutil.ignore_patterns("new_photos"))
first = sorted(os.listdir(os.path.join(scratch, "masks")))[0]
stem = first[:-4]
os.rename(os.path.join(scratch, "masks", first), os.path.join(scratch, "masks", stem + "_mask.png"))
try:
    make_dataset("folder", "train", root=scratch, size=SIZE)
except DataError as err:
    print(f"misnamed mask: DataError: {err}")
os.rename(os.path.join(scratch, "masks", stem + "_mask.png"), os.path.join(scratch, "masks", first))
tensor_to_pil(torch.zeros(1, 50, 50, dtype=torch.uint8)).save(os.path.join(scratch, "masks", first))
try:
    make_dataset("folder", "train", root=scratch, size=SIZE)
except DataError as err:
    print(f"mask of another size: DataError: {err}")

# %% [markdown]
# ## The 0/1 trap
#
# Many tools save a mask as the array they hold: 0 for background and **1** for lesion, in an 8-bit PNG.
# Nothing is wrong with the data, but 1 out of 255 is black to the eye: the mask looks empty in every
# viewer, and a program that reads lesion as "above 127" finds none. minunet reads such a mask right
# (1 is lesion) and says so in a note; `minunet train` prints it as `note: ...`. Here three masks of the
# scratch folder are saved that way:

# %%
saved = sorted(os.listdir(os.path.join(scratch, "masks")))[:3]  # the first is the 50 x 50 mask above
for name in saved:
    mask, _ = read_mask(os.path.join(DIR, "masks", name))  # (1, H, W) in {0, 1}: the right mask, from DIR
    tensor_to_pil(mask).save(os.path.join(scratch, "masks", name))  # 0/1, not 0/255
trapped = make_dataset("folder", "train", root=scratch, size=SIZE)
in_train = [name for name in saved if os.path.splitext(name)[0] in trapped.ids]
print(f"saved as 0/1: {', '.join(saved)} (the first replaces the 50 x 50 mask); {len(in_train)} of them in the "
      f"training split, {len(saved) - len(in_train)} in validation, and the training split's note counts its own:")
for note in trapped.notes:
    print(f"note: {note}")
print(f"and minunet reads them as the 0/255 masks: the masks are equal: {torch.equal(trapped.masks, train_set.masks)}")

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

name = sorted(os.listdir(os.path.join(scratch, "masks")))[0]
as_saved = pil_to_tensor(Image.open(os.path.join(scratch, "masks", name)), mode="L")[0]  # (H, W): 0 and 1
usual = pil_to_tensor(Image.open(os.path.join(DIR, "masks", name)), mode="L")[0]  # (H, W): 0 and 255
fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
panels = [(usual, f"0/255 mask: values {torch.unique(usual).tolist()}"),
          (as_saved, f"0/1 mask, as a viewer shows it: {torch.unique(as_saved).tolist()}"),
          (as_saved * 255, "the same 0/1 mask, times 255")]
for ax, (picture, title) in zip(axes, panels):
    ax.imshow(picture.tolist(), cmap="gray", vmin=0, vmax=255)  # 0 black, 255 white, as a viewer
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "09_mask_trap.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "09_mask_trap.png"))

# %% [markdown]
# ## Training, from the command line
#
# `minunet train --data folder --data-root DIR` trains on the folder; it is run here through
# `minunet.cli.main`, the function behind the `minunet` command. `--tune-threshold` stores in `best.pt` the
# decision threshold with the best validation Dice (see the end of this tutorial); `--overwrite` replaces the
# run of an earlier pass of this tutorial.

# %%
run = os.path.join(OUT, "09_run")
command = ["train", "--data", "folder", "--data-root", DIR, "--model", "unet", "--size", str(SIZE),
           "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--tune-threshold", "--out", run, "--overwrite"]
print("minunet " + " ".join(command))
exit_code = minunet_cli(command)
assert exit_code == 0, f"minunet train exited {exit_code}"

# %% [markdown]
# ## Segmenting new photographs
#
# `minunet predict` segments an image file or a folder of them, each at its own size, with the threshold
# stored in the checkpoint (`--threshold T` overrides it). It writes `<name>_Segmentation.png` (0/255) and,
# with `--overlay`, `<name>_overlay.png`. Look at the overlays before trusting the masks: a prediction that
# covers much of a photograph, or marks its dark corners (a dermoscope's vignette is dark like a lesion), is
# one of the failures tutorial 08's report lists, and the printed share of each image says how much it marked.

# %%
masks_dir = os.path.join(OUT, "09_predicted_masks")
command = ["predict", "--checkpoint", os.path.join(run, "best.pt"), "--input", os.path.join(DIR, "new_photos"),
           "--output", masks_dir, "--overlay", "--overwrite"]
print("minunet " + " ".join(command))
exit_code = minunet_cli(command)
assert exit_code == 0, f"minunet predict exited {exit_code}"
photos = sorted(os.listdir(os.path.join(DIR, "new_photos")))
fig, axes = plt.subplots(2, len(photos), figsize=(3 * len(photos), 5), squeeze=False)
for c, photo in enumerate(photos):
    stem = os.path.splitext(photo)[0]
    predicted = pil_to_tensor(Image.open(os.path.join(masks_dir, stem + "_Segmentation.png")), mode="L")
    print(f"  {stem}_Segmentation.png: lesion {(predicted > 127).float().mean():.1%} of the image")
    for r, path in enumerate([os.path.join(DIR, "new_photos", photo), os.path.join(masks_dir, stem + "_overlay.png")]):
        axes[r][c].imshow(pil_to_tensor(Image.open(path), mode="RGB").permute(1, 2, 0).tolist())
        axes[r][c].set_title(os.path.basename(path), fontsize=8)
        axes[r][c].set_axis_off()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "09_predictions.png"), dpi=90)
plt.close(fig)
show(os.path.join(OUT, "09_predictions.png"))

# %% [markdown]
# ## When the prediction is all black, or all lesion
#
# An all-black `_Segmentation.png` means no pixel's probability passed the threshold. In order, check:
#
# 1. **The masks.** Are the training masks what you think? The notes above (0/1 or grey masks), the kinds
#    per file, and an `empty` kind for a mask with no lesion at all. If the masks are empty or wrong, the
#    model learnt exactly that.
# 2. **The probabilities.** A model early in training is *timid*: its probabilities rise on the lesion but
#    stay below 0.5. The largest probability per image says so, and the **threshold curve** on validation
#    (the mean Dice at every threshold) shows whether a lower threshold would already find the lesions.
# 3. **Training length.** If the training loss in `history.csv` was still falling at the last epoch, train
#    longer (`--epochs`).
# 4. **Learning rate.** A validation Dice stuck at 0 with a training loss that stalls high or jumps (the first
#    curve of tutorial 06b's gallery) means too high a rate (`--lr 3e-4`); a loss that barely moves, too low.
#
# The opposite failure, a prediction that is all lesion, has the same causes, plus one more: a threshold
# chosen on a model that has not learnt yet (its probabilities all alike) or on very few validation images.
#
# Here is check 2 for a run stopped far too early (two steps: one epoch on 32 of the training images),
# next to the run above: each image's largest probability, and the threshold curve on validation. An
# untrained network gives every pixel a probability near 0.5, and two steps move them little: all a hair
# below 0.5 make an all-black prediction, all a hair above an all-lesion one. The same numbers tell the two
# apart, and the code after them says which this run shows. They check the run above too: a Dice that peaks
# sharply at 0.5 and falls on both sides is tutorial 08's sign of a model that has barely started, however
# good its Dice at 0.5.

# %%
torch.manual_seed(0)
short = UNet(base_channels=Recipe().base_channels)
fit(short, train_set.subset(range(32)), val_set, Recipe(epochs=1, batch_size=16), log=None)
best_state = load_checkpoint(os.path.join(run, "best.pt"))
trained = model_from_checkpoint(best_state)
images = torch.stack([val_set[i][0] for i in range(len(val_set))])  # (N, 3, S, S)
curves, tops = {}, {}
for label, net in (("two steps", short), (f"best.pt (epoch {best_state.epoch} of {EPOCHS})", trained)):
    tops[label] = probabilities(net.eval(), images).amax(dim=(1, 2, 3))  # (N,): each image's largest probability
    scores = evaluate(net, val_set)  # at threshold 0.5
    curves[label], t = scores["dice_by_threshold"], best_threshold(scores["dice_by_threshold"])
    area, truth = scores["per_image"]["predicted_area"].mean(), scores["per_image"]["lesion_area"].mean()
    print(f"{label:20s} largest probability in a validation image: lowest {tops[label].min():.2f}, median "
          f"{tops[label].median():.2f}; at 0.5: Dice {curves[label][0.5]:.3f}, lesion {area:.0%} of the image "
          f"(truly {truth:.0%}); best threshold {t:g} (Dice {curves[label][t]:.3f})")
    black = int((tops[label] <= 0.5).sum())  # images with no pixel above 0.5: all black at the default threshold
    if black:
        print(f"{'':20s} {black} of {len(images)} validation images have no pixel above 0.5: all black at 0.5"
              + (f"; at {t:g} lesions appear: a timid model, which more training fixes" if t < 0.5 else ""))
    elif area > 0.8:
        print(f"{'':20s} no image is all black, but the prediction covers {area:.0%} of the image on average: "
              f"the opposite failure, all lesion, of a model that has not learnt yet")
    elif curves[label][0.5] - max(curves[label][0.45], curves[label][0.55]) > 0.2:
        print(f"{'':20s} a spike at 0.5: Dice {curves[label][0.45]:.3f} at 0.45 and {curves[label][0.55]:.3f} at "
              f"0.55: its probabilities sit near 0.5, a model that has barely started (tutorial 08): train longer")
    elif tops[label].median() < 0.8:
        print(f"{'':20s} no all-black and no all-lesion prediction at 0.5, but a timid one: in half the images no "
              f"pixel reaches {tops[label].median():.2f}, so a threshold above that empties them (the curve below); "
              f"a model not yet sure of its lesions, which more training fixes")
    else:
        print(f"{'':20s} no all-black and no all-lesion prediction at 0.5")

# %% [markdown]
# ## Choosing the threshold on validation
#
# 0.5 is a default, not a law. The threshold is a setting like the number of epochs, so it is chosen on the
# validation images, never on the images used to report the final score (tutorial 08). `minunet train
# --tune-threshold` does it at every new best epoch and stores the result in `best.pt`; `minunet evaluate`
# and `minunet predict` then use it unless given `--threshold`. With only a few validation images (a tenth
# of your folder) the chosen threshold is itself noisy: prefer 0.5 unless the curve shows a clear gain. A
# model whose probabilities are all alike, as the two-step run's, draws a step rather than a curve: at a
# threshold below them every pixel is lesion, above them none.

# %%
state = load_checkpoint(os.path.join(run, "best.pt"))
print(f"best.pt (epoch {state.epoch}) stores threshold {state.threshold:g}")
fig, ax = plt.subplots(figsize=(6.4, 3.4))
for label, curve in curves.items():
    ax.plot(THRESHOLDS, [curve[t] for t in THRESHOLDS], "o-", markersize=3, label=label)
ax.axvline(0.5, color="grey", linestyle=":", label="0.5")
ax.set(xlabel="threshold (probability above it is lesion)", ylabel="mean validation Dice", xlim=(0, 1),
       ylim=(0, 1), title="the threshold curve on validation")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "09_threshold_curve.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "09_threshold_curve.png"))

# %% [markdown]
# That is the whole path for your own data: `DIR/images` and `DIR/masks`, then
#
#     minunet train --data folder --data-root DIR --model resunet34 --epochs 20 --tune-threshold --out runs/mine
#     minunet evaluate --checkpoint runs/mine/best.pt --data folder --data-root DIR --split val --report rep/
#     minunet predict --checkpoint runs/mine/best.pt --input new_photos/ --output masks/ --overlay
#
# ## Exercises
#
# Answers: `tutorials/answers/09_your_own_data.md`; the notebook runs them after its last cell. All three run
# in quick mode (`--quick`, on synthetic lesions), so that your numbers can be checked against the answers;
# the full run's differ.
#
# 1. **Every mask 0/1.** *Quick mode.* Copy the folder and save *every* mask of the copy as 0/1 (the loop of
#    "The 0/1 trap", over all names). What does `make_dataset("folder", ...)` say, and are the masks it reads
#    those of the 0/255 folder?
# 2. **A JPEG mask.** *Quick mode.* Save one mask of a copy as a JPEG under its `.png` name
#    (`image.save(path, format="JPEG")`). What does minunet say, and why is a JPEG mask never quite 0 and 255?
# 3. **Too high, too low.** *Quick mode.* Train again with `--lr 1`, then with `--lr 1e-5` (the other flags as
#    above, another `--out`). Both runs fail: how do their `history.csv` and their predictions tell the two
#    failures apart?
