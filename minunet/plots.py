"""Figures written as PNG files: training curves, and image / true mask / predicted mask overlays.

They are drawn on matplotlib Figure objects, not through pyplot: no window or backend is needed (servers,
tests), and importing this module leaves a notebook's inline figures alone.
"""
import torch
from matplotlib.figure import Figure

from .transforms import IMAGENET_MEAN, IMAGENET_STD


def plot_history(history, path):
    """Training and validation loss, and validation Dice and Jaccard, per epoch (history: list of dicts)."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 3.8))
    ax_loss, ax_dice = fig.subplots(1, 2)
    ax_loss.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    ax_loss.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="BCE + Dice loss", title="loss")
    ax_loss.legend()
    ax_dice.plot(epochs, [row["val_dice"] for row in history], "o-", label="Dice")
    ax_dice.plot(epochs, [row["val_jaccard"] for row in history], "o-", label="Jaccard")
    ax_dice.set(xlabel="epoch", ylabel="score", title="validation", ylim=(0, 1))
    ax_dice.legend()
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def to_display(image):
    """An image tensor (3, H, W) as (H, W, 3) float in [0, 1]: uint8 is scaled, a normalised float undone."""
    if image.dtype == torch.uint8:
        return image.permute(1, 2, 0).float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (image.float() * std + mean).clamp(0, 1).permute(1, 2, 0)


def plot_cases(images, masks, preds, path, titles=None):
    """One row per case: the image, the true mask over it (green), the predicted mask over it (red).

    images: list of (3, H, W) tensors (uint8, or ImageNet-normalised float); masks, preds: lists of (1, H, W)
    or (H, W) tensors in {0, 1}; titles: one string per row (e.g. the image id and its Dice).
    """
    rows = len(images)
    fig = Figure(figsize=(9, 3 * rows))
    axes = fig.subplots(rows, 3, squeeze=False)
    for r in range(rows):
        shown = to_display(images[r])  # (H, W, 3)
        for c, (mask, colour, name) in enumerate([(None, None, "image"), (masks[r], (0, 1, 0), "true mask"),
                                                  (preds[r], (1, 0, 0), "prediction")]):
            ax = axes[r][c]
            picture = shown
            if mask is not None:
                m = mask.reshape(shown.shape[:2]).bool()[..., None]  # (H, W, 1)
                picture = torch.where(m, 0.55 * shown + 0.45 * torch.tensor(colour), shown)
            ax.imshow(picture.tolist())  # nested lists: matplotlib takes them, no NumPy needed here
            ax.set_axis_off()
            ax.set_title(f"{titles[r]}: {name}" if titles and c == 0 else name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
