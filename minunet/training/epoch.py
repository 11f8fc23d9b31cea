"""A finished epoch: what fit hands on (Epoch, to its `on_epoch`), what a checkpoint records of the model
(model_record), how it is validated and the threshold it keeps (validation_inference, kept_threshold), what
resuming needs (training_state, read back by restore), and the line it prints."""
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from ..device import PRECISIONS
from ..errors import CheckpointError, Fix, SettingError, TrainingError
from ..evaluation import best_threshold
from ..inference import Inference
from ..losses import loss_name
from ..transforms import normalisation


@dataclass
class Epoch:
    """What a finished epoch hands to fit's `on_epoch`: all that a run folder writes (best.pt, last.pt, the
    history and its curves). Only the first process of a torchrun group gets it."""
    number: int
    history: list  # one dict per epoch so far, this one last
    model: torch.nn.Module  # the training weights
    best: Optional[torch.nn.Module]  # the weights validated (EMA's where on) if this epoch is the best so far
    record: dict  # what a checkpoint says of the model (Checkpoint's fields): run, size, mean, std, classes, ...
    training_state: dict  # what resuming needs: optimizer, scheduler, scaler, (EMA,) random generator states


def model_record(train_set, recipe, spec, amp_dtype):
    """What a checkpoint of this run says of its model (minunet.checkpoint.Checkpoint's fields): the run (the
    recipe, the precision it ran in), the working size (H, W) as the data have it, the normalisation, the
    channels, the classes and the loss that trains it (the recipe's, or its softmax counterpart for K > 2)."""
    size = tuple(train_set[0][0].shape[-2:])  # (H, W)
    mean, std = normalisation(spec.channels)
    ran_in = next(name for name, dtype in PRECISIONS.items() if dtype == amp_dtype)  # "auto" made concrete
    return dict(run={**asdict(recipe), "size": size, "ran_in": ran_in}, size=size, mean=mean, std=std,
                channels=spec.channels, classes=spec.classes, loss=loss_name(recipe.loss, len(spec.classes)))


def training_state(optimizer, scheduler, scaler, ema):
    """What resuming needs besides the weights: the optimizer's, schedule's, scaler's, moving average's and the
    random generator's states (restore reads them back)."""
    state = dict(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                 rng_state=torch.get_rng_state())
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


def timings(t0, t1, images, history):
    """An epoch's seconds of training (from t0 to t1) and of validation (from t1 to now), its training images
    per second, and the seconds since the run began (over resumes: 0.1.0's rows lack them)."""
    now = time.perf_counter()
    return dict(train_seconds=t1 - t0, train_images_per_s=images / (t1 - t0), val_seconds=now - t1,
                elapsed_seconds=(history[-1].get("elapsed_seconds", 0) if history else 0) + now - t0)


def hand_on(epoch, on_epoch, log, line):
    """Hand a finished epoch to on_epoch (its files), then log its line: a printed epoch is on disk. The line is
    logged also when the files could not be written (a full disk): the epoch itself was trained."""
    try:
        if on_epoch is not None:
            on_epoch(epoch)
    except (TrainingError, CheckpointError):  # its files could not be written (a full disk)
        if log:
            log(line)
        raise
    if log:
        log(line)


def validation_inference(record, recipe, spec):
    """The Inference of validation: the run's normalisation, the recipe's TTA and orientation (its views), the
    data's classes. SettingError for a recipe that tunes a threshold where none decides the pixels (K > 2
    classes: the argmax)."""
    check_threshold_tuning(recipe, spec)
    return Inference(mean=record["mean"], std=record["std"], tta=recipe.tta, spec=spec, orientation=recipe.orientation)


def check_threshold_tuning(recipe, spec):
    """SettingError for a recipe that tunes a threshold where none decides the pixels (K > 2 classes: the
    argmax, Inference.thresholded)."""
    if recipe.tune_threshold and not Inference(spec=spec).thresholded:
        raise SettingError(f"there is no threshold to tune with {len(spec.classes)} classes: each pixel takes its "
                           f"most probable class", fix=Fix(tune_threshold=None))


def kept_threshold(row, recipe, spec):
    """The decision threshold kept with an epoch: the one with the best validation Dice where the recipe tunes it,
    else Inference's (0.5); None for K > 2 classes, where each pixel takes its most probable class."""
    if len(spec.classes) > 2:
        return None
    return best_threshold(row["dice_by_threshold"]) if recipe.tune_threshold else Inference.threshold


def epoch_line(row, epochs, is_best):
    """The line printed after an epoch: its losses, validation scores and speed."""
    return (f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
            f"val Dice {row['val_dice']:.4f}  val Jaccard {row['val_jaccard']:.4f}  "
            f"{row['train_images_per_s']:.1f} img/s" + ("  (best)" if is_best else ""))


def restore(checkpoint, model, optimizer, scheduler, scaler, ema=None):
    """Load a last.pt's weights and training state (a Checkpoint, or nothing for None); (first epoch to run, best
    Dice, history)."""
    if checkpoint is None:
        return 1, -1.0, []
    state = checkpoint.training_state
    model.load_state_dict(checkpoint.state_dict)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if ema is not None and "ema" in state:
        ema.load_state_dict(state["ema"])
    torch.set_rng_state(state["rng_state"])
    return checkpoint.epoch + 1, checkpoint.best_dice, list(checkpoint.history)
