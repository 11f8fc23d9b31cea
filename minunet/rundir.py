"""The folder a training run writes (--out): its files, writing them after each epoch, and guarding them.

    best.pt      the checkpoint of the epoch with the best validation Dice
    last.pt      the checkpoint of the last epoch, with what resuming needs (optimizer, schedule, RNG, history)
    history.csv  one row per epoch (HISTORY_COLUMNS)
    curves.png   the loss and validation curves (minunet.plots.plot_history)
"""
import csv
import os

import torch

from .checkpoint import open_checkpoint, save_checkpoint
from .errors import TrainingError
from .paths import must_be_a_folder, read_only
from .recipe import Recipe

RUN_FILES = ("best.pt", "last.pt", "history.csv", "curves.png")
DATA_FLAGS = ("data", "data_root", "limit", "precision")  # what minunet train records besides the recipe
RESUME_KEYS = ("size", "mean", "std", "run", "epoch", "history", "best_dice", "optimizer", "scheduler", "scaler",
               "rng_state")
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


def write_curves(out_dir, history, loss):
    """history.csv and curves.png of `history` (a list of dicts, one per epoch) of a run trained with `loss`
    (its name in minunet.losses.LOSSES)."""
    from .plots import plot_history  # matplotlib is only needed once a run writes files

    write_history(history, os.path.join(out_dir, "history.csv"))
    plot_history(history, os.path.join(out_dir, "curves.png"), loss)


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
    write_curves(out_dir, history, info["run"]["loss"])


def refuse_to_overwrite(out, resume=None):
    """Raise TrainingError when `out` holds a file a run writes, unless it is the run being resumed."""
    taken = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
    if taken and not (resume and os.path.samefile(out, os.path.dirname(os.path.abspath(resume)))):
        last = os.path.join(out, "last.pt")
        resume_it = f"--resume {last} to continue it, " if "last.pt" in taken else ""  # no last.pt: nothing to resume
        raise TrainingError(f"{out} already holds a run ({', '.join(taken)}): pass {resume_it}--overwrite to replace "
                            f"it, or another --out")


def new_run(out, overwrite=False):
    """Check that a new run may write into `out`: a folder (or a path where one can be made) that holds no
    run, unless overwrite."""
    must_be_a_folder(out, "--out")
    if not overwrite:
        refuse_to_overwrite(out)


def resumed_run(path, out=None, given=None, overwrite=False):
    """(recipe, run dict, last.pt dict, model, out folder) of the run that the last.pt at `path` continues,
    into `out` (default: the folder of `path`). given: the recipe flags the user passed, which must agree with
    the run's. TrainingError (or CheckpointError) where it cannot be resumed."""
    state, model = open_checkpoint(path, RESUME_KEYS, "cannot be resumed",
                                   "pass a last.pt (best.pt keeps no optimizer state)")
    missing = [flag for flag in DATA_FLAGS if flag not in state["run"]]
    if missing:
        raise TrainingError(f"{path} cannot be resumed by minunet train: it was written by fit() and does not say "
                            f"its {', '.join(missing)}; resume it with fit(..., resume=) in Python")
    recipe = Recipe.of_run(state["run"])  # older runs lack the newer fields: they ran what they `was`
    epochs = (given or {}).get("epochs")
    if epochs is not None and epochs != recipe.epochs:
        raise TrainingError(f"--resume continues a run of {recipe.epochs} epochs as it was started (its learning "
                            f"rate schedule depends on them): leave out --epochs, or start a new run with "
                            f"--epochs {epochs}")
    out = out or os.path.dirname(os.path.abspath(path))
    must_be_a_folder(out, "--out")
    if not overwrite:
        refuse_to_overwrite(out, path)
    locked = [f for f in RUN_FILES if read_only(os.path.join(out, f))]
    if locked:
        raise TrainingError(f"{os.path.join(out, locked[0])} is read-only: resuming would replace it; make "
                            f"it writable (chmod u+w) or copy the run to another --out")
    return recipe, state["run"], state, model, out
