"""Checkpoints: `Checkpoint`, the one type that knows what a checkpoint file holds, and reading and writing them
safely.

A checkpoint is the model's name (a key of minunet.models.MODELS), its constructor arguments (model.config()) and
its weights, with what a run records of them (the working size, the normalisation, the classes, the threshold,
the recipe, the epoch; last.pt also the history and the optimizer's state to resume from), so `evaluate` and
`predict` need nothing but the file. On disk it is a dict of plain data and tensors saved with torch.save and
read with torch.load(weights_only=True): nothing in it can run code. Every other module reads a Checkpoint's
fields; only this one knows the file's keys.

Formats: FORMAT is written into every file. Files without one (format 1: minunet 0.1.0 up to 0.2.0.dev0) are
read too: their size may be one side of a square, their threshold may belong to several classes, their loss is
the recipe's name, and whatever they lack reads as None ("not recorded"). The resnet34 U-Net of 0.1.0 had other
decoder key names, renamed as its weights load (minunet.models.resunet).
"""
import io
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Optional

import torch

from .atomic import write_atomically
from .data.catalog import BINARY, DataSpec, numbered
from .errors import CheckpointError, one_line
from .models.registry import MODELS, build_model, model_spec
from .losses import loss_name
from .recipe import Recipe
from .transforms import height_width

FORMAT = 2  # the checkpoint format this version writes; 1: files of 0.1.0 up to 0.2.0.dev0, which say none
RECORDED = ("size", "mean", "std", "channels", "classes", "threshold", "loss", "epoch", "best_dice", "history")


@dataclass
class Checkpoint:
    """A model's name, arguments and weights, and what its run recorded. None: not recorded.

    size: (H, W) the model was trained at. mean, std: the normalisation of its input, per channel. channels,
    classes: the images it reads (1 or 3) and its class names, background first (two: the binary path).
    threshold: the probability above which a pixel is lesion (two classes only; None: 0.5 is used). loss: the
    loss that trained the weights (its name; ce_jaccard, not the recipe's bce_jaccard, for K > 2 classes). run:
    what trained it: the recipe's fields (minunet.recipe.Recipe), the precision it ran in (ran_in) and, from
    `minunet train`, the data flags; {} for none. epoch, best_dice: the epoch of these weights and the best
    validation Dice so far. history, training_state: last.pt's rows per epoch and its optimizer, schedule,
    scaler, random generator (and EMA) states, to resume from.
    """
    model: str
    model_args: dict
    state_dict: dict
    size: Optional[tuple] = None
    mean: Optional[tuple] = None
    std: Optional[tuple] = None
    channels: Optional[int] = None
    classes: Optional[tuple] = None
    threshold: Optional[float] = None
    loss: Optional[str] = None
    run: dict = field(default_factory=dict)
    epoch: Optional[int] = None
    best_dice: Optional[float] = None
    history: Optional[list] = None
    training_state: Optional[dict] = None
    format: int = FORMAT

    def __post_init__(self):  # one form for each field, whatever it was given as
        outputs = self.model_args.get("out_channels", 1)
        self.size = None if self.size is None else height_width(self.size)
        self.mean, self.std = (None if v is None else tuple(v) for v in (self.mean, self.std))
        self.channels = self.channels or self.model_args.get("in_channels", 3)
        if not self.classes or len(self.classes) != (2 if outputs == 1 else outputs):
            self.classes = BINARY if outputs == 1 else numbered(outputs)  # unnamed: background, class 1, ...
        self.classes = tuple(str(name) for name in self.classes)
        if len(self.classes) > 2:
            self.threshold = None  # each pixel takes its most probable class: no threshold applies
        if "size" in self.run:
            self.run = dict(self.run, size=height_width(self.run["size"]))

    @classmethod
    def of_model(cls, model, **fields):
        """The checkpoint of `model` (its name, arguments and weights; unwrapped from DistributedDataParallel)
        with `fields` (size=, mean=, ..., as the class lists them)."""
        name, args = model_spec(model)
        return cls(name, args, getattr(model, "module", model).state_dict(), **fields)

    @property
    def recipe(self):
        """The recipe it was trained with (minunet.recipe.Recipe.of_run: fields its run lacks take the value
        runs had before them)."""
        return Recipe.of_run(self.run)

    @property
    def spec(self):
        """The images and labels the model was trained on (minunet.data.catalog.DataSpec)."""
        return DataSpec(self.channels, self.classes)

    def lacking(self, *names):
        """The names of the fields among `names` that this checkpoint does not record."""
        return [name for name in names if getattr(self, name) in (None, {}, [])]

    def to_file(self):
        """The dict written to disk: plain data and tensors, readable by torch.load(weights_only=True) and, field
        for field, by minunet 0.1.0's reader (the size as [H, W], last.pt's training state at the top)."""
        state = dict(format=FORMAT, model=self.model, model_args=self.model_args, state_dict=self.state_dict,
                     size=None if self.size is None else list(self.size), mean=self.mean, std=self.std,
                     channels=self.channels, classes=list(self.classes), threshold=self.threshold, loss=self.loss,
                     run=dict(self.run, size=list(self.run["size"])) if "size" in self.run else self.run,
                     epoch=self.epoch, best_dice=self.best_dice, history=self.history,
                     **(self.training_state or {}))
        return {key: value for key, value in state.items() if value is not None}

    @classmethod
    def of_file(cls, state):
        """The Checkpoint of a dict read from a file of any format (FORMAT, or 1 where it says none)."""
        fields = ("format", "model", "model_args", "state_dict", "run") + RECORDED
        training = {key: value for key, value in state.items() if key not in fields}  # last.pt's, to resume from
        recorded = {name: state.get(name) for name in RECORDED}
        checkpoint = cls(state["model"], state["model_args"], state["state_dict"], run=dict(state.get("run") or {}),
                         training_state=training or None, format=state.get("format", 1), **recorded)
        if checkpoint.loss is None and "loss" in checkpoint.run:  # format 1: the recipe's name, even for K > 2
            checkpoint.loss = loss_name(checkpoint.run["loss"], len(checkpoint.classes))
        return checkpoint

    def save(self, path):
        """Write this checkpoint to `path` whole or not at all (minunet.atomic), in FORMAT; CheckpointError when
        it cannot be written, and the previous file at `path`, if any, is kept as it was."""
        buffer = io.BytesIO()
        torch.save(self.to_file(), buffer)
        try:
            write_atomically(path, buffer.getvalue())
        except OSError as err:  # a full disk, no permission, ...
            raise CheckpointError(f"cannot write {path} ({err.strerror or one_line(err, 160)}); the previous "
                                  f"{os.path.basename(path)}, if any, is kept as it was") from None


def save_checkpoint(path, model, **fields):
    """Write `model`'s name, arguments and weights with `fields` (Checkpoint's) to `path`, atomically."""
    Checkpoint.of_model(model, **fields).save(path)


def exported_model(path):
    """"ONNX" or "TorchScript" when the file `path` is a model exported for another runtime, not a checkpoint;
    else None. Told by the first bytes: an ONNX file is a protobuf ModelProto, whose first field is its
    ir_version (the tag byte 0x08, then a small number); a TorchScript file is a zip archive, as torch.save's
    are, but one holding code/ and constants.pkl."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) == 4 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] & 0x07 in (0, 2):
        return "ONNX"  # no pickle (0x80 ...) or zip (PK) starts so, nor any text
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # a truncated zip: torch.load says so
        if any(re.search(r"(^|/)(code/|constants\.pkl$)", name) for name in names):
            return "TorchScript"
    return None


def load_checkpoint(path):
    """The Checkpoint in the file `path`, of any format, read with torch.load(weights_only=True): no code in it can
    run. CheckpointError, in one line, for anything that is not a minunet checkpoint."""
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a folder: pass the best.pt or last.pt inside it")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist: pass the path of a best.pt or last.pt")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (was its writing cut short?): pass another checkpoint")
    exported = exported_model(path)
    if exported:
        runs_in = "onnxruntime" if exported == "ONNX" else "torch.jit.load"
        raise CheckpointError(f"{path} is an exported {exported} model, not a checkpoint (it runs in {runs_in}): "
                              f"pass the best.pt or last.pt of minunet train it was exported from")
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
    if state.get("format", 1) > FORMAT:
        raise CheckpointError(f"{path} is a checkpoint of format {state['format']}, written by a newer minunet than "
                              f"this one (which reads formats up to {FORMAT}): upgrade minunet")
    return Checkpoint.of_file(state)


def model_from_checkpoint(checkpoint):
    """The model a Checkpoint describes, with its weights, in eval mode."""
    try:
        model = build_model(checkpoint.model, **checkpoint.model_args)
        model.load_state_dict(checkpoint.state_dict)
    except (RuntimeError, TypeError, ValueError) as err:  # other arguments, keys or shapes than the model's
        raise CheckpointError(f"checkpoint does not fit a {checkpoint.model} model: {one_line(err, 240)}") from None
    return model.eval()


def open_checkpoint(path, needs=("size", "mean", "std"), what="is not a checkpoint of a minunet training run",
                    advice="use the best.pt or last.pt that `minunet train` wrote"):
    """(Checkpoint, model) of the checkpoint at `path`, which must record the fields `needs`; CheckpointError,
    naming the file, `what` it is not and the `advice`, when it cannot be used."""
    checkpoint = load_checkpoint(path)
    missing = checkpoint.lacking(*needs)
    if missing:
        raise CheckpointError(f"{path} {what} (it lacks {', '.join(m.replace('_', ' ') for m in missing)}): {advice}")
    try:
        return checkpoint, model_from_checkpoint(checkpoint)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
