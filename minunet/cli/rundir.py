"""The folder a training run writes (--out): its files, writing them after each epoch, and guarding them.

    best.pt      the checkpoint of the epoch with the best validation Dice
    last.pt      the checkpoint of the last epoch, with what resuming needs (optimizer, schedule, RNG, history)
    history.csv  one row per epoch (HISTORY_COLUMNS)
    curves.png   the loss and validation curves (minunet.plots.plot_history)
"""
import csv
import hashlib
import io
import os
from dataclasses import asdict

from ..atomic import write_atomically
from ..checkpoint import open_checkpoint, save_checkpoint
from ..errors import TrainingError
from .paths import must_be_a_folder, read_only
from ..transforms import height_width

RUN_FILES = ("best.pt", "last.pt", "history.csv", "curves.png")
DATA_DEFAULTS = dict(data="synthetic", data_root=None, limit=None, precision="auto", classes=None, channels=None)
DATA_FLAGS = tuple(DATA_DEFAULTS)  # what minunet train records of a run besides its recipe (train's other flags)
RECORDED_SINCE_0_1 = DATA_FLAGS[:4]  # what every run of minunet train records (classes, channels: later ones)
RESUME_FIELDS = ("size", "mean", "std", "run", "epoch", "best_dice", "history", "training_state")  # a Checkpoint's
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_dice", "val_jaccard", "train_seconds",
                   "train_images_per_s", "val_seconds", "elapsed_seconds")


def write_history(history, path):
    """One CSV row per epoch, HISTORY_COLUMNS first; written atomically like the checkpoints."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    write_atomically(path, text.getvalue())


def write_curves(out_dir, history, loss):
    """history.csv and curves.png of `history` (a list of dicts, one per epoch) of a run trained with `loss`
    (its name: a Checkpoint's loss)."""
    from ..plots import plot_history  # matplotlib is only needed once a run writes files

    os.makedirs(out_dir, exist_ok=True)
    for name, write in (("history.csv", write_history), ("curves.png", lambda h, path: plot_history(h, path, loss))):
        path = os.path.join(out_dir, name)
        try:
            write(history, path)
        except OSError as err:  # a full disk, no permission, ...
            last = os.path.join(out_dir, "last.pt")
            raise TrainingError(f"cannot write {path} ({err.strerror or err}); {last} of epoch "
                                f"{history[-1]['epoch']} is intact: make room, then resume with --resume {last}") \
                from None


class RunFolder:
    """The files of a training run in `out`, written after each epoch: fit's `on_epoch`.

    best.pt holds the weights of the best epoch so far, last.pt the last epoch's training weights and all that
    resuming needs (the history, the optimizer's, schedule's, scaler's, moving average's and random generator's
    states); both record the run (fit's record, with `run_info`: what minunet train says of the data).
    unsaid: the Epoch that last.pt holds when ctrl-C came while its history.csv or curves.png was written (its
    line not yet printed), else None.
    """

    def __init__(self, out, run_info=None):
        self.out, self.run_info = out, dict(run_info or {})
        self.unsaid = None

    def __call__(self, epoch):
        os.makedirs(self.out, exist_ok=True)  # at the first epoch: a run refused before training leaves no folder
        run = dict(epoch.record["run"])
        ran_in = run.pop("ran_in")
        record = dict(epoch.record, run={**run, **self.run_info, "ran_in": ran_in})
        if epoch.best is not None:
            save_checkpoint(os.path.join(self.out, "best.pt"), epoch.best, **record)
        save_checkpoint(os.path.join(self.out, "last.pt"), epoch.model, **record, history=epoch.history,
                        training_state=epoch.training_state)
        try:
            write_curves(self.out, epoch.history, record["loss"])
        except KeyboardInterrupt:
            self.unsaid = epoch
            raise


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
    """(recipe, run dict, last.pt's Checkpoint, model, out folder) of the run that the last.pt at `path` continues,
    into `out` (default: the folder of `path`). given: the flags the user passed (recipe and DATA_FLAGS); each
    must agree with the run, except --data-root, which replaces the run's (the data moved). TrainingError (or
    CheckpointError) where it cannot be resumed; nothing is written."""
    checkpoint, model = open_checkpoint(path, RESUME_FIELDS, "cannot be resumed",
                                        "pass a last.pt (best.pt keeps no optimizer state)")
    missing = [flag for flag in RECORDED_SINCE_0_1 if flag not in checkpoint.run]
    if missing:
        raise TrainingError(f"{path} cannot be resumed by minunet train: it was written by fit() and does not say "
                            f"its {', '.join(missing)}; resume it with fit(..., resume=) in Python")
    recipe = checkpoint.recipe  # older runs lack the newer fields: they ran what they `was`
    spec = checkpoint.spec  # what --channels and --classes left out (None) came to
    own = dict(channels=checkpoint.run.get("channels") or spec.channels, classes=checkpoint.run.get("classes")
               or len(spec.classes))
    refuse_contradictions(path, {**asdict(recipe), **checkpoint.run, **own}, given or {})
    run = {**DATA_DEFAULTS, **checkpoint.run, **{k: v for k, v in (given or {}).items() if k == "data_root"}}
    out = out or os.path.dirname(os.path.abspath(path))
    must_be_a_folder(out, "--out")
    if not overwrite:
        refuse_to_overwrite(out, path)
    locked = [f for f in RUN_FILES if read_only(os.path.join(out, f))]
    if locked:
        raise TrainingError(f"{os.path.join(out, locked[0])} is read-only: resuming would replace it; make "
                            f"it writable (chmod u+w) or copy the run to another --out")
    return recipe, run, checkpoint, model, out


def refuse_contradictions(path, stored, given):
    """TrainingError naming each flag in `given` whose value is not the run's (`stored`); --data-root may differ."""
    def same(a, b):
        return (list(a) if isinstance(a, (list, tuple)) else a) == (list(b) if isinstance(b, (list, tuple)) else b)
    given = dict(given, size=height_width(given["size"])) if "size" in given else given  # as stored: (H, W)
    clash = {k: v for k, v in given.items() if k != "data_root" and not same(v, stored.get(k))}
    if set(clash) == {"epochs"}:
        raise TrainingError(f"--resume continues a run of {stored['epochs']} epochs as it was started (its learning "
                            f"rate schedule depends on them): leave out --epochs, or start a new run with "
                            f"--epochs {clash['epochs']}")
    if clash:
        def flag(name, value):  # as typed: --lr 0.5, --scale-shift, --no-tta
            name = name.replace("_", "-")
            return f"--{name}" if value is True else f"--no-{name}" if value is False else f"--{name} {was(value)}"
        def was(value):  # a size (H, W) as --size spells it: 64, 64x96
            if isinstance(value, tuple):
                return value[0] if value[0] == value[1] else f"{value[0]}x{value[1]}"
            return {None: "none", True: "on", False: "off"}[value] if value is None or isinstance(value, bool) \
                else value
        flags = ", ".join(f"{flag(k, v)} (the run's: {was(stored.get(k))})" for k, v in clash.items())
        raise TrainingError(f"--resume continues {path} as it was started, and {flags} "
                            f"{'contradicts' if len(clash) == 1 else 'contradict'} it: leave "
                            f"{'it' if len(clash) == 1 else 'them'} out, or start a new run in another --out")


def data_fingerprint(*datasets):
    """A short hash of the image ids of `datasets`: the same images under another --data-root give the same."""
    ids = "\n".join(image_id for dataset in datasets for image_id in dataset.ids)
    return hashlib.sha256(ids.encode()).hexdigest()[:16]


def save_checkpoint_copy(source, target):
    """Copy the file `source` to `target` atomically (never half-written), making its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    with open(source, "rb") as f:
        write_atomically(target, f.read())


def carry_best(resumed_from, out):
    """Copy best.pt from the folder of the last.pt being resumed into a new --out that has none, so that the new
    folder holds the best epoch so far (the resumed epochs replace it only when they beat it)."""
    source = os.path.join(os.path.dirname(os.path.abspath(resumed_from)), "best.pt")
    target = os.path.join(out, "best.pt")
    if os.path.exists(source) and not os.path.exists(target):
        save_checkpoint_copy(source, target)
