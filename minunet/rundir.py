"""The folder a training run writes (--out): its files, writing them after each epoch, and guarding them.

    best.pt      the checkpoint of the epoch with the best validation Dice
    last.pt      the checkpoint of the last epoch, with what resuming needs (optimizer, schedule, RNG, history)
    history.csv  one row per epoch (HISTORY_COLUMNS)
    curves.png   the loss and validation curves (minunet.plots.plot_history)
"""
import csv
import os

import torch

from .checkpoint import save_checkpoint
from .errors import TrainingError

RUN_FILES = ("best.pt", "last.pt", "history.csv", "curves.png")
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_dice", "val_jaccard", "train_seconds",
                   "train_images_per_s", "val_seconds", "elapsed_seconds")


def write_history(history, path):
    """One CSV row per epoch, HISTORY_COLUMNS first; written atomically like the checkpoints."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def write_curves(out_dir, history):
    """history.csv and curves.png of `history` (a list of dicts, one per epoch)."""
    from .plots import plot_history  # matplotlib is only needed once a run writes files

    write_history(history, os.path.join(out_dir, "history.csv"))
    plot_history(history, os.path.join(out_dir, "curves.png"))


def save_epoch(out_dir, model, best, info, history, optimizer, scheduler, scaler, ema=None):
    """After an epoch: best.pt (the model `best`, unless None), last.pt, history.csv and curves.png.

    info: what both checkpoints hold besides the weights (the run's flags, size, epoch, threshold, ...).
    last.pt holds `model` (the training weights) and all that resuming needs: the history, the optimizer's,
    the schedule's, the scaler's, the moving average's and the random generator's states.
    """
    if best is not None:
        save_checkpoint(os.path.join(out_dir, "best.pt"), best, **info)
    resume = dict(history=history, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                  scaler=scaler.state_dict(), rng_state=torch.get_rng_state())
    if ema is not None:
        resume["ema"] = ema.state_dict()
    save_checkpoint(os.path.join(out_dir, "last.pt"), model, **info, **resume)
    write_curves(out_dir, history)


def refuse_to_overwrite(out, resume=None):
    """Raise TrainingError when `out` holds a file a run writes, unless it is the run being resumed."""
    taken = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
    if taken and not (resume and os.path.samefile(out, os.path.dirname(os.path.abspath(resume)))):
        last = os.path.join(out, "last.pt")
        resume_it = f"--resume {last} to continue it, " if "last.pt" in taken else ""  # no last.pt: nothing to resume
        raise TrainingError(f"{out} already holds a run ({', '.join(taken)}): pass {resume_it}--overwrite to replace "
                            f"it, or another --out")
