"""Checkpoints: saving and loading them safely.

A checkpoint is a dict saved with torch.save: the model's name (a key of minunet.models.MODELS), its constructor
arguments (model.config()), its state dict, and whatever the caller adds (the working size, the normalisation, the
epoch, ...; last.pt also the optimizer's state to resume from). So `evaluate` and `predict` need nothing but the
file. It is read with torch.load(weights_only=True): a checkpoint can hold tensors and plain data only, never code
that would run.
"""
import os
import pickle
import re
import warnings

import torch

from .errors import CheckpointError, one_line
from .models.registry import MODELS, build_model, model_spec

def save_checkpoint(path, model, **extra):
    """Write model name, arguments and weights (plus `extra` entries) to `path`, atomically.

    The file is written beside `path`, flushed to disk and renamed over it, so a crash or a full disk
    mid-write leaves the old file intact; a failed write raises CheckpointError.
    """
    name, args = model_spec(model)
    state = dict(model=name, model_args=args, state_dict=getattr(model, "module", model).state_dict(), **extra)
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a power cut cannot leave an empty file
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # a full disk, no permission, ... (torch's writer: RuntimeError)
        raise CheckpointError(f"cannot write {path} ({one_line(err, 160)}); the previous "
                              f"{os.path.basename(path)}, if any, is kept as it was") from None
    finally:  # also on ctrl-C mid-write: no half-written .tmp is left beside the checkpoint
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path):
    """Read a minunet checkpoint (with torch.load(weights_only=True): no code in it can run)."""
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a folder: pass the best.pt or last.pt inside it")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist: pass the path of a best.pt or last.pt")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (was its writing cut short?): pass another checkpoint")
    try:
        with warnings.catch_warnings():  # torch's notes (on pickle protocols, ...) would add lines to stderr
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError: unsafe or unknown content; RuntimeError, EOFError: truncated
        text = one_line(err)
        unsafe = re.search(r"(?:GLOBAL|class) ([\w.]+)", text)  # the function or class it would call
        if isinstance(err, pickle.UnpicklingError) and unsafe:
            raise CheckpointError(f"refusing {path}: it holds pickled Python objects that could run code "
                                  f"({unsafe.group(1)}); minunet loads only tensors and plain data: use a "
                                  f"checkpoint written by minunet train") from None
        reason = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        reason = reason.group(1) if reason else text.split(". ")[0] or type(err).__name__
        raise CheckpointError(f"cannot read checkpoint {path} (truncated, or not written by torch.save?): "
                              f"{reason[:160]}; copy it again or pass another checkpoint") from None
    if not (isinstance(state, dict) and state.get("model") in MODELS and isinstance(state.get("model_args"), dict)
            and "state_dict" in state):
        raise CheckpointError(f"{path} is not a minunet checkpoint (no model name, arguments and weights in it): "
                              f"pass a best.pt or last.pt written by minunet train")
    return state


def model_from_checkpoint(state):
    """The model a checkpoint (as returned by load_checkpoint) describes, with its weights, in eval mode."""
    try:
        model = build_model(state["model"], **state["model_args"])
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, TypeError, ValueError) as err:  # other arguments, keys or shapes than the model's
        raise CheckpointError(f"checkpoint does not fit a {state['model']} model: {one_line(err, 240)}") from None
    return model.eval()


def open_checkpoint(path, needs=("size", "mean", "std"), what="is not a checkpoint of a minunet training run",
                    advice="use the best.pt or last.pt that `minunet train` wrote"):
    """(checkpoint dict, model) of the checkpoint at `path`, which must hold the keys `needs`; CheckpointError,
    naming the file, `what` it is not and the `advice`, when it cannot be used."""
    state = load_checkpoint(path)
    missing = [key for key in needs if key not in state]
    if missing:
        raise CheckpointError(f"{path} {what} (it lacks {', '.join(missing)}): {advice}")
    try:
        return state, model_from_checkpoint(state)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
