"""A model card: a short Markdown page that travels with an exported model and says what it is.

Written from the checkpoint alone (a minunet.checkpoint.Checkpoint: its model, size, normalisation, classes,
threshold, loss and the run of `minunet train`), so any checkpoint has one, a checkpoint of minunet 0.1.0
included; whatever a checkpoint does not record is said to be "not recorded", never guessed.
"""
import copy
import csv
import os

import torch

from .. import __version__
from ..data.modality import ORIENTATIONS
from ..inference import fold_batchnorm

NOT_RECORDED = "not recorded"
HISTORY_SHOWN = ("epoch", "train_loss", "val_loss", "val_dice", "val_jaccard")
DATA_WORDS = {"isic2016": "dermoscopic images of ISIC 2016", "folder": "the user's own folder of images and masks",
              "synthetic": "minunet's synthetic lesions"}
LOADING = {"onnx": "ONNX; run it with `onnxruntime.InferenceSession(\"{name}\")`; its metadata property "
                   "`minunet` holds the size, normalisation, threshold and classes as JSON",
           "torchscript": "TorchScript; load it with `torch.jit.load(\"{name}\")`; the extra file "
                          "`minunet.json` holds the size, normalisation, threshold and classes"}


def output_text(out_channels, logits):
    """What the exported model returns, in words."""
    if logits:
        return f"(B, {out_channels}, H, W) logits"
    if out_channels == 1:
        return "(B, 1, H, W) lesion probabilities: the sigmoid of the logits"
    return f"(B, {out_channels}, H, W) class probabilities: the softmax of the logits over the channels"


def last_history_row(checkpoint, checkpoint_path):
    """(the last epoch's row of the run's history, where it came from), or (None, None) when there is none:
    last.pt holds the history; for best.pt the run's history.csv beside it is read."""
    if checkpoint.history:
        return checkpoint.history[-1], "the checkpoint"
    csv_path = os.path.join(os.path.dirname(os.path.abspath(checkpoint_path or ".")), "history.csv")
    if checkpoint_path and os.path.isfile(csv_path):
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows:
            return rows[-1], "history.csv beside the checkpoint"
    return None, None


def number(value):
    """A history value (float, or a string from history.csv) as text: 4 decimals for fractions."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.0f}" if value.is_integer() else f"{value:.4f}"


def recorded(run, key, show=str):
    """run[key] as text, or "not recorded" where an older checkpoint's run lacks it."""
    return show(run[key]) if key in run else NOT_RECORDED


def parameter_counts(model):
    """(parameters of the model as trained, parameters with its BatchNorm folded into the convolutions)."""
    folded = fold_batchnorm(copy.deepcopy(model).eval())
    return (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in folded.parameters()))


def model_card(checkpoint, model, checkpoint_path=None, exported=None):
    """The model card of a Checkpoint and its model, as Markdown text.

    exported: what was exported, when the card goes beside a file: dict(format=..., path=..., logits=bool,
    details=text); None for a card of the checkpoint alone.
    """
    run, args = checkpoint.run, checkpoint.model_args
    out_channels = getattr(model, "out_channels", 1)
    in_channels = args.get("in_channels", 3)
    trained, folded = parameter_counts(model)
    h, w = checkpoint.size or (None, None)
    threshold = checkpoint.threshold
    views = ORIENTATIONS[checkpoint.recipe.orientation]["views"]  # what TTA averaged: the run's way up
    two_classes = len(checkpoint.classes) == 2  # a threshold decides each pixel; K > 2: the most probable class
    source = os.path.basename(checkpoint_path) if checkpoint_path else "a checkpoint"
    epoch = NOT_RECORDED if checkpoint.epoch is None else checkpoint.epoch
    lines = [f"# Model card: minunet {checkpoint.model}", "",
             f"A segmentation model trained with minunet, written from `{source}` by `minunet export`.", "",
             "## Model", "",
             f"- architecture: `{checkpoint.model}` (minunet.{type(model).__name__}), arguments "
             + ", ".join(f"{k}={v!r}" for k, v in args.items()),
             f"- parameters: {trained:,} ({folded:,} with BatchNorm folded into the convolutions, as exported)",
             f"- checkpoint: `{source}`, epoch {epoch}", "",
             "## Input and output", ""]
    if checkpoint.mean is not None and checkpoint.std is not None:
        mean, std = (", ".join(f"{v:g}" for v in values) for values in (checkpoint.mean, checkpoint.std))
        lines.append(f"- input: float32 images (B, {in_channels}, H, W), values scaled to [0, 1], then per channel "
                     f"minus mean ({mean}) and divided by std ({std})")
    else:
        lines.append(f"- input: float32 images (B, {in_channels}, H, W); normalisation {NOT_RECORDED}")
    lines.append(f"- size: trained at {h} x {w} pixels (height x width): resize images to it; any height and "
                 f"width of at least 32 runs, but the scores below hold at this size" if h else
                 f"- size: {NOT_RECORDED}; any height and width of at least 32 runs")
    lines.append(f"- output: {output_text(out_channels, exported and exported.get('logits'))}")
    if two_classes:
        lines.append(f"- decision: lesion where the probability is above {threshold:g}" if threshold is not None
                     else f"- decision: threshold {NOT_RECORDED}; minunet uses 0.5 for such checkpoints")
    else:
        lines.append("- decision: each pixel takes the class of highest probability")
    lines += ["- classes: " + ", ".join(f"{k} {name}" for k, name in enumerate(checkpoint.classes)),
              "", "## Training recipe", "",
              f"- loss: {checkpoint.loss or NOT_RECORDED}",
              f"- test-time augmentation in validation: {recorded(run, 'tta', lambda v: views if v else 'off')} "
              f"(the exported file runs one forward pass; average over those views yourself for TTA)"]
    if two_classes:
        lines.append(f"- threshold: {f'{threshold:g}' if threshold is not None else NOT_RECORDED}"
                     + (f" (tuned on validation: {run['tune_threshold']})" if "tune_threshold" in run else ""))
    lines += ["- " + ", ".join(f"{name} {recorded(run, key)}" for name, key in (
                  ("epochs", "epochs"), ("batch size", "batch_size"), ("learning rate", "lr"), ("EMA", "ema"),
                  ("seed", "seed"), ("precision", "ran_in" if "ran_in" in run else "precision"))
                  + ((("encoder weights", "encoder_weights"),) if checkpoint.model == "resunet34" else ())),
              "", "## Data", "",
              f"- data: {recorded(run, 'data')}; data root: {recorded(run, 'data_root', lambda v: v or 'default')}; "
              f"images per split: {recorded(run, 'limit', lambda v: 'all' if v is None else f'at most {v}')}",
              "- split: trained on its train split; the best epoch" + (" and threshold" if run.get("tune_threshold")
                                                                       and two_classes else "")
              + " chosen on its val split" if run else f"- split: {NOT_RECORDED}",
              "", "## Validation scores", ""]
    best = checkpoint.best_dice
    lines.append(f"- best validation Dice: {best:.4f} (epoch {epoch})" if best is not None
                 else f"- best validation Dice: {NOT_RECORDED}")
    row, where = last_history_row(checkpoint, checkpoint_path)
    lines.append(f"- last epoch of the run ({where}): " + ", ".join(f"{k} {number(row[k])}" for k in HISTORY_SHOWN
                                                                    if k in row) if row else
                 f"- history of the run: {NOT_RECORDED}")
    if exported:
        lines += ["", "## Exported file", "", f"- `{os.path.basename(exported['path'])}`: "
                  + LOADING[exported["format"]].format(name=os.path.basename(exported["path"])),
                  f"- {exported['details']}"]
    lines += ["", "## Software", "", f"- minunet {__version__}, torch {torch.__version__}", "",
              "## Intended use", "",
              "For teaching and research: learning how segmentation models are built, trained and judged, and "
              "comparing methods on public data. It is not a medical device and must not be used for diagnosis, "
              "screening or any decision about a patient. Its validation scores come from the split that chose "
              "the best epoch, so they are optimistic, and they hold only for images like its training data "
              f"({DATA_WORDS.get(run.get('data'), 'data ' + NOT_RECORDED)}), taken and resized the same way."]
    if run.get("data") == "synthetic":
        lines.append("It was trained on synthetic lesions: a demonstration of the path, not a model of real skin.")
    return "\n".join(lines) + "\n"
