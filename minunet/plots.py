"""Figures written as PNG files: training curves, image / true mask / predicted mask overlays, the
evaluation report's figures (per-image Dice, Dice against lesion size, mean Dice against the threshold), and a
network's blocks drawn from the model itself (record_blocks, plot_blocks: tutorials 03b and 04).

They are drawn on matplotlib Figure objects, not through pyplot: no window or backend is needed (servers,
tests), and importing this module leaves a notebook's inline figures alone. `path` is a file name (written whole
or not at all, minunet.atomic, in the format its extension names) or a binary file object (e.g. io.BytesIO, to
embed the PNG in a page). Data go in as Python lists (or
tensor.tolist()): matplotlib takes them, and no NumPy is needed here.
"""
import io
import math
import os

import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch

from .atomic import write_atomically
from .losses import loss_label
from .transforms import Normalize


def check_figure_name(path, what="the figure"):
    """DataError unless `path` ends in an image format matplotlib writes (.png, .pdf, .svg, ...): without one,
    matplotlib would write another file than the one named (cases -> cases.png). what: how the caller names
    the file in the message."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .errors import DataError

    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()  # {"png": "Portable Network Graphics", ...}
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension not in formats:
        found = f"ends in .{extension}, which matplotlib cannot write" if extension else "has no file extension"
        raise DataError(f"{what} {path} {found}: name the file with one of .png, .pdf, .svg, .jpg (e.g. "
                        f"{os.path.splitext(path)[0]}.png)")


def save_figure(fig, path, dpi, fmt=None):
    """Write `fig` at `dpi` to `path`, a file name or a binary file object, in `fmt` (default: the file name's
    extension, else PNG)."""
    if hasattr(path, "write"):
        fig.savefig(path, dpi=dpi, format=fmt)
        return
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format=fmt or os.path.splitext(path)[1].lstrip(".").lower() or None)
    write_atomically(path, buffer.getvalue())


def plot_history(history, path, loss="bce_jaccard"):
    """Training and validation loss (`loss`: its name in minunet.losses.LOSSES), and validation Dice and
    Jaccard, per epoch (history: list of dicts)."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 3.8))
    ax_loss, ax_dice = fig.subplots(1, 2)
    ax_loss.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    ax_loss.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel=f"{loss_label(loss)} loss", title="loss")
    ax_loss.legend()
    ax_dice.plot(epochs, [row["val_dice"] for row in history], "o-", label="Dice")
    ax_dice.plot(epochs, [row["val_jaccard"] for row in history], "o-", label="Jaccard")
    ax_dice.set(xlabel="epoch", ylabel="score", title="validation", ylim=(0, 1))
    ax_dice.legend()
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, 100)


def to_display(image):
    """An image tensor (3, H, W) as (H, W, 3) float in [0, 1]: uint8 is scaled, a normalised float undone."""
    if image.dtype == torch.uint8:
        return image.permute(1, 2, 0).float() / 255
    return Normalize().undo(image).permute(1, 2, 0)


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
    save_figure(fig, path, 90)


def plot_dice_histogram(dices, failure_dice, path):
    """How many images reached each Dice (20 bins over [0, 1]), with the failure line at `failure_dice`."""
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.subplots()
    ax.hist(dices, bins=[i / 20 for i in range(21)], color="#4a78b0", edgecolor="white")
    ax.axvline(failure_dice, color="#c0392b", linestyle="--", label=f"failure line, Dice {failure_dice:.3f}")
    ax.set(xlabel="Dice of the image", ylabel="images", xlim=(0, 1))
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, 100, "png")


def plot_dice_by_size(lesion_areas, dices, failure_dice, path):
    """One dot per image: its lesion's fraction of the image (x) and its Dice (y), with the failure line."""
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.subplots()
    ax.scatter(lesion_areas, dices, s=14, color="#4a78b0", alpha=0.7)
    ax.axhline(failure_dice, color="#c0392b", linestyle="--", label=f"failure line, Dice {failure_dice:.3f}")
    ax.set(xlabel="lesion area (fraction of the image)", ylabel="Dice", xlim=(0, 1), ylim=(-0.02, 1.02))
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, 100, "png")


def plot_threshold_curve(thresholds, mean_dices, threshold, path):
    """Mean Dice against the decision threshold on the probabilities, with the threshold in use marked."""
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.subplots()
    ax.plot(thresholds, mean_dices, "o-", color="#4a78b0", markersize=3)
    ax.axvline(threshold, color="#c0392b", linestyle="--", label=f"threshold in use, {threshold:g}")
    ax.set(xlabel="threshold (probability above it is lesion)", ylabel="mean Dice", xlim=(0, 1))
    ax.legend(loc="lower center")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, 100, "png")


def record_blocks(model, image, blocks=None):
    """Run model(image) once, without gradients, with a forward hook on each block; return
    [(name, class name, inputs, output)] in the order the blocks ran.

    blocks: [(name, module)] to watch; by default the model's direct children (`model.named_children()`).
    A forward hook is a function PyTorch calls each time a module has run, with its inputs and its output.
    """
    calls = []
    blocks = list(model.named_children()) if blocks is None else list(blocks)
    handles = [module.register_forward_hook(
        lambda module, inputs, output, name=name: calls.append((name, type(module).__name__, inputs, output)))
        for name, module in blocks]
    try:
        with torch.no_grad():
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    return calls


BLOCK_COLOURS = {"halves": "#cfe2f3", "doubles": "#fce5cd", "keeps": "#eeeeee", "output": "#d9ead3"}


def plot_blocks(model, image, path, title, blocks=None, spacing=1.25):
    """Draw the blocks model(image) ran (record_blocks) as boxes, left to right in the order they ran and one
    row lower for each halving of the height, each labelled with its name, class and output shape C x H x W;
    an arrow from the block that made a tensor to each block that took it: solid from the block just before,
    dashed red from further back (the skip connections). Returns (calls, arrows): record_blocks' list and
    [(maker, taker, is_skip)]. A tensor no watched block made (zeros in place of a skip, say) gets no arrow.
    """
    calls = [("input", "image", (), image)] + record_blocks(model, image, blocks)
    fig = Figure(figsize=(spacing * len(calls) + 0.5, 5.2))
    ax = fig.subplots()
    made_by, boxes, arrows = {}, {}, []  # id(tensor) -> name of the block that output it; name -> (box, centre)
    levels = 0
    for k, (name, kind, inputs, output) in enumerate(calls):
        level = round(math.log2(image.shape[2] / output.shape[2]))  # how many times H was halved
        previous = round(math.log2(image.shape[2] / calls[k - 1][3].shape[2])) if k else level
        change = "output" if k == len(calls) - 1 else (
            "halves" if level > previous else "doubles" if level < previous else "keeps")
        levels = max(levels, level)
        cx, cy = spacing * k, -1.1 * level
        box = ax.add_patch(FancyBboxPatch((cx - 0.55, cy - 0.34), 1.1, 0.68, boxstyle="round,pad=0.02",
                                          facecolor=BLOCK_COLOURS[change], edgecolor="black", linewidth=0.8))
        boxes[name] = (box, (cx, cy))
        c, h, w = output.shape[1:]
        ax.text(cx, cy, f"{name}\n{kind}\n{c}×{h}×{w}", ha="center", va="center", fontsize=7)
        for tensor in inputs:
            if not isinstance(tensor, torch.Tensor) or id(tensor) not in made_by:
                continue
            maker = made_by[id(tensor)]
            skip = maker != calls[k - 1][0]
            arrows.append((maker, name, skip))
            maker_box, maker_centre = boxes[maker]
            ax.annotate("", xy=(cx, cy), xytext=maker_centre,
                        arrowprops=dict(arrowstyle="-|>", patchA=maker_box, patchB=box, shrinkA=1, shrinkB=1,
                                        color="tab:red" if skip else "black", linestyle="--" if skip else "-"))
        made_by[id(output)] = name  # an in-place block (ReLU) hands on the same tensor: its last maker counts
    ax.set_xlim(-0.8, spacing * (len(calls) - 1) + 0.8)
    ax.set_ylim(-1.1 * levels - 0.6, 0.6)
    ax.set_axis_off()
    ax.legend(handles=[Line2D([], [], color="black", label="output -> next block"),
                       Line2D([], [], color="tab:red", linestyle="--", label="skip connection (from further back)")]
              + [Patch(facecolor=colour, edgecolor="black", label=f"{change} H and W" if change != "output"
                       else "output") for change, colour in BLOCK_COLOURS.items()],
              loc="lower right", fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, 100)
    return calls, arrows
