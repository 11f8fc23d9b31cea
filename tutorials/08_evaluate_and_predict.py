# %% [markdown]
# # 08 · Evaluating on held-out images, and segmenting new ones
#
# A trained model is judged once, on images that played no part in training or in choosing the best epoch:
# the *held-out* split (ISIC 2016's test set where it is present, else the validation split). This tutorial
# loads a checkpoint (tutorial 07's, else 06's, else it trains 06's U-Net first), **prints** the six ISIC
# challenge metrics on the held-out split, **draws** the distribution of per-image Dice
# (`out/08_dice_histogram.png`) and the worst and best cases (`out/08_worst_and_best.png`), then writes a
# few images to disk as ordinary JPEG files, as a user's new photographs would be, segments them with
# `minunet.predict.predict`, and **draws** the masks it wrote (`out/08_predicted_files.png`).
#
# **How long it takes.** `--quick`: under 30 s on 2 CPU cores. Without it: under a minute on a 2-core CPU
# when tutorial 06 or 07 has left a checkpoint (scoring is fast; 11 s on one NVIDIA H200 GPU), else
# tutorial 06's training time first.
#
# Run with no arguments (synthetic lesions), `--data-root DIR` (ISIC 2016), `--quick`, or
# `--checkpoint FILE` for any checkpoint written by `fit` or `minunet train`.

# %%
import argparse
import os
import sys

import torch
from PIL import Image

from minunet import UNet
from minunet.data import DataError, make_dataset
from minunet.metrics import THRESHOLD_JACCARD
from minunet.checkpoint import load_checkpoint, model_from_checkpoint
from minunet.device import choose_device
from minunet.evaluation import evaluate
from minunet.predict import predict
from minunet.train import fit
from minunet.transforms import pil_to_tensor

parser = argparse.ArgumentParser(description="Tutorial 08: evaluating and predicting")
parser.add_argument("--data-root", metavar="DIR",
                    help="ISIC 2016: the challenge's folders or medsegbench's npz files (default: synthetic lesions)")
parser.add_argument("--quick", action="store_true", help="few images: a smoke run in seconds")
parser.add_argument("--checkpoint", metavar="FILE", help="a best.pt or last.pt (default: tutorial 07's or 06's)")
parser.add_argument("--out", metavar="DIR", help="where figures, runs and files go (default: tutorials/out)")
args, _ = parser.parse_known_args()  # "known": in Jupyter the kernel's own -f flag is ignored
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = args.out or os.path.join(HERE, "out")
os.makedirs(OUT, exist_ok=True)
DATA = "isic2016" if args.data_root else "synthetic"
LIMIT = 8 if args.quick else None  # at most this many images per split
MODE = f"{DATA}" + ("_quick" if args.quick else "")


def show(path):
    """Say where a figure was written; in a notebook, also display it."""
    print(f"figure: {os.path.relpath(path)}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image as ShowImage, display
        display(ShowImage(filename=path))


# %% [markdown]
# ## The checkpoint
#
# A checkpoint written by `fit` holds the model's name and constructor arguments with its weights, and the
# image size and normalisation it was trained with, so nothing else is needed to use it.
# `load_checkpoint` reads it with `torch.load(weights_only=True)`, which refuses files that would run code.

# %%
candidates = [os.path.join(OUT, f"07_resunet34_{MODE}", "best.pt"), os.path.join(OUT, f"06_unet_{MODE}", "best.pt")]
path = args.checkpoint or next((c for c in candidates if os.path.exists(c)), None)
if path is None:
    print("no checkpoint from tutorial 07 or 06 here: training tutorial 06's U-Net first")
    torch.manual_seed(0)
    size = 64 if args.quick else 128
    fit(UNet(base_channels=8 if args.quick else 32),
        make_dataset(DATA, "train", root=args.data_root, size=size, augment=True, seed=0, limit=LIMIT),
        make_dataset(DATA, "val", root=args.data_root, size=size, limit=LIMIT and LIMIT // 2),
        os.path.dirname(candidates[1]), epochs=1 if args.quick else 20 if DATA == "isic2016" else 10,
        batch_size=8 if args.quick else 16, lr=1e-3, seed=0)
    path = candidates[1]
state = load_checkpoint(path)
model = model_from_checkpoint(state)  # in eval mode
device, _ = choose_device("auto")  # the GPU when there is one
model = model.to(device)
print(f"{os.path.relpath(path)}: {state['model']} {state['model_args']}, trained at {state['size']} px, "
      f"epoch {state['epoch']}, validation Dice {state['best_dice']:.4f}; running on {device}")

# %% [markdown]
# ## The held-out split and the ISIC metrics
#
# As the challenge scores, each prediction is compared with the ground truth *at the mask's own
# resolution*: the model works at (say) 128 x 128, so its probabilities are resized to the original mask's
# size (bilinearly) and thresholded at 0.5 there. Each metric is computed per image, then averaged:
#
# - **Jaccard** (the challenge's ranking metric) and **Dice**: the overlap of prediction and truth.
# - **threshold Jaccard**: Jaccard, but 0 for an image below 0.65: a clinically useless border counts as a
#   failure, however close.
# - **sensitivity**: the share of the lesion found; **specificity**: the share of the skin left alone;
#   **accuracy**: the share of pixels right (high for any model: most pixels are easy skin).

# %%
try:
    split = "test"
    held_out = make_dataset(DATA, split, root=args.data_root, size=state["size"], limit=LIMIT)
except DataError as err:  # e.g. the challenge folders at hand have no test images
    split = "val"
    print(f"no test split ({err}); scoring the validation split instead")
    held_out = make_dataset(DATA, split, root=args.data_root, size=state["size"], limit=LIMIT)
scores = evaluate(model, held_out, device=device, per_image=True)
print(f"{scores['count']} {DATA} {split} images:")
for name in ("jaccard", "dice", "threshold_jaccard", "sensitivity", "specificity", "accuracy"):
    print(f"  {name:18s} {scores[name]:.4f}")
jaccard = scores["per_image"]["jaccard"]
print(f"{int((jaccard < THRESHOLD_JACCARD).sum())} of {len(jaccard)} images are below the Jaccard threshold "
      f"{THRESHOLD_JACCARD}")

# %% [markdown]
# A mean hides the spread. Most images are segmented well; a few fail badly, and those are the ones to
# look at: faint lesions, lesions larger than the picture, hair, rulers, ink marks, dark corners.

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # write files; no window
import matplotlib.pyplot as plt  # noqa: E402

from minunet.plots import plot_cases  # noqa: E402

dice = scores["per_image"]["dice"]  # (N,) in the order of held_out
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.hist(dice.tolist(), bins=20, range=(0, 1), color="tab:blue")
ax.set(xlabel="Dice", ylabel="images", title=f"per-image Dice, {DATA} {split} (mean {scores['dice']:.3f})")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "08_dice_histogram.png"), dpi=100)
plt.close(fig)
show(os.path.join(OUT, "08_dice_histogram.png"))

# %% [markdown]
# The three worst and three best images by Dice (the figure shows the model's working size; the scores
# were taken at full size).

# %%
order = torch.argsort(dice).tolist()
picked = order[:3] + order[-3:] if len(order) > 6 else order
images, masks, preds, titles = [], [], [], []
for i in picked:
    image, mask, image_id = held_out[i]
    with torch.no_grad():
        logits = model(image[None].to(device))[0].cpu()  # (1, S, S)
    images.append(image)
    masks.append(mask)
    preds.append((logits > 0).float())  # logit > 0 <=> probability > 0.5
    titles.append(f"{image_id} Dice {dice[i]:.2f}")
plot_cases(images, masks, preds, os.path.join(OUT, "08_worst_and_best.png"), titles=titles)
show(os.path.join(OUT, "08_worst_and_best.png"))

# %% [markdown]
# ## Segmenting new image files
#
# In use, a model meets photographs on disk, of any size. To stand in for them, a few held-out images are
# written as JPEG files at 300 x 225 pixels (not the model's size, not square), plus one broken file.
# `predict(model, paths, out_dir, size)` reads each file, resizes it to the model's size, normalises it
# as in training, runs the model, resizes the probabilities back to the file's own size, and writes
# `<name>_Segmentation.png` (0 = skin, 255 = lesion, the challenge's format) and, with `overlay=True`, the
# mask drawn over the photograph. A file it cannot read is reported and skipped, not fatal.
#
# `predict` prepares the model for speed first (BatchNorm folded into the convolutions), changing it in
# place: call it last, or reload the checkpoint before training further.

# %%
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

written, skipped = predict(model, paths, masks_dir, size=state["size"], device=device, overlay=True,
                           mean=state["mean"], std=state["std"])
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
    for r, (name, mode) in enumerate([(f"{stem}.jpg", "RGB"), (f"{stem}_overlay.png", "RGB")]):
        folder = new_dir if r == 0 else masks_dir
        picture = pil_to_tensor(Image.open(os.path.join(folder, name)), mode=mode)  # (3, H, W) uint8
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
#     minunet predict --checkpoint runs/resunet34/best.pt --input docs/samples --output masks/ --overlay
#
# That is the whole path: data, transforms, models, losses and metrics, training, evaluation and use.
