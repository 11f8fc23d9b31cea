"""What `minunet train`, `minunet evaluate` and `minunet predict` do, once their flags are parsed (cli.py)."""
import argparse
import json
import os
import pickle
import sys

import torch

from . import distributed
from .checkpoint import build_model, load_checkpoint, model_from_checkpoint
from .data import IMAGE_EXTENSIONS, make_dataset
from .device import choose_device
from .errors import CheckpointError, DataError, TrainingError, one_line
from .evaluation import THRESHOLDS, evaluate
from .inference import MASK_SUFFIX, OVERLAY_SUFFIX
from .losses import LOSSES
from .predict import predict
from .report import image_flags, write_report
from .rundir import RUN_FILES, refuse_to_overwrite, write_curves
from .train import fit

RESUME_KEYS = ("size", "mean", "std", "run", "epoch", "history", "best_dice", "optimizer", "scheduler", "scaler",
               "rng_state")
RUN_FLAGS = ("model", "data", "data_root", "size", "epochs", "batch_size", "lr", "loss", "ema", "scale_shift", "tta",
             "tune_threshold", "encoder_weights", "base_channels", "limit", "seed", "precision")
DEFAULT_EPOCHS = 20
REPORT_SCORES = ("dice", "jaccard", "accuracy", "sensitivity", "specificity", "lesion_area", "predicted_area")


def say(message):
    """Print one line on stderr (progress and warnings; stdout keeps the results)."""
    sys.stderr.write(message + "\n")  # one write: lines of parallel processes never interleave
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------------
# train

def encoder_weights(value):
    """--encoder-weights as ResNet34UNet takes it: None, "imagenet" or an existing file's path."""
    if value == "none":
        return None
    if os.path.isdir(value):
        raise CheckpointError(f"--encoder-weights {value} is a folder: pass the path of torchvision's "
                              f"resnet34-b627a593.pth (or imagenet, or none)")
    if value != "imagenet" and not os.path.isfile(value):
        raise CheckpointError(f"--encoder-weights {value}: no such file (use imagenet, none, or the path of "
                              f"torchvision's resnet34-b627a593.pth)")
    return value


def new_model(args):
    """The model the train flags ask for, with its encoder weights loaded (seeded, so runs repeat)."""
    torch.manual_seed(args.seed)
    if args.model == "unet":
        return build_model("unet", base_channels=args.base_channels)
    try:
        return build_model("resunet34", encoder_weights=encoder_weights(args.encoder_weights))
    except (RuntimeError, ValueError, OSError) as err:  # offline, or a file that is not the state dict
        raise CheckpointError(f"cannot load the encoder weights: {one_line(err)}") from None
    except (EOFError, pickle.UnpicklingError):  # empty, or pickled objects that torch.load(weights_only) refuses
        raise CheckpointError(f"cannot load the encoder weights from {args.encoder_weights}: it is empty, or holds "
                              f"Python objects that could run code; pass torchvision's resnet34-b627a593.pth, "
                              f"imagenet or none") from None


def open_checkpoint(path, needs=("size", "mean", "std"), what="is not a checkpoint of a minunet training run",
                    advice="use the best.pt or last.pt that `minunet train` wrote"):
    """(checkpoint dict, model) of a checkpoint holding the keys `needs`; CheckpointError when unusable."""
    state = load_checkpoint(path)
    missing = [key for key in needs if key not in state]
    if missing:
        raise CheckpointError(f"{path} {what} (it lacks {', '.join(missing)}): {advice}")
    try:
        return state, model_from_checkpoint(state)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None


def file_in_the_way(path):
    """`path`, or the nearest of its parents that exists, where that is a file and not a folder; else None."""
    while path and not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path if path and os.path.exists(path) and not os.path.isdir(path) else None


def must_be_a_folder(path, flag):
    """Raise DataError when `path`, or a parent of it, is a file (a missing folder is made later)."""
    blocker = file_in_the_way(path)
    if blocker:
        where = "" if blocker == path else f": {blocker}"
        raise DataError(f"{flag} {path}{where} is a file, not a folder: pass a folder (it is made if missing)")


def read_only(path):
    """Whether the file `path` exists and is read-only: no write bit in its mode (os.access alone would say
    root may write it), or not writable by this user."""
    return os.path.exists(path) and (not os.stat(path).st_mode & 0o222 or not os.access(path, os.W_OK))


def resumed_run(args):
    """(run flags, last.pt dict, model) of the run --resume continues; TrainingError where it cannot."""
    state, model = open_checkpoint(args.resume, RESUME_KEYS, "cannot be resumed",
                                   "pass a last.pt (best.pt keeps no optimizer state)")
    run = argparse.Namespace(**{"loss": "bce_dice", "ema": None, "scale_shift": False, "tta": False,
                                "tune_threshold": False, **state["run"]})  # older runs lack the newer flags
    if args.epochs is not None and args.epochs != run.epochs:
        raise TrainingError(f"--resume continues a run of {run.epochs} epochs as it was started (its learning "
                            f"rate schedule depends on them): leave out --epochs, or start a new run with "
                            f"--epochs {args.epochs}")
    run.device, run.workers = args.device, args.workers
    run.out = args.out or os.path.dirname(os.path.abspath(args.resume))
    must_be_a_folder(run.out, "--out")
    if not args.overwrite:
        refuse_to_overwrite(run.out, args.resume)
    locked = [f for f in RUN_FILES if read_only(os.path.join(run.out, f))]
    if locked:
        raise TrainingError(f"{os.path.join(run.out, locked[0])} is read-only: resuming would replace it; make "
                            f"it writable (chmod u+w) or copy the run to another --out")
    return run, state, model


def train_command(args):
    if args.resume:
        run, state, model = resumed_run(args)
        if state["epoch"] >= run.epochs:  # finished: only history.csv and curves.png may lag behind last.pt
            write_curves(run.out, state["history"])
            print(f"nothing to resume: {run.out} has finished all {run.epochs} epochs (history.csv and curves.png "
                  f"rewritten from last.pt)")
            return
    else:
        run, state = args, None
        run.epochs = run.epochs or DEFAULT_EPOCHS
        run.out = run.out or os.path.join("runs", f"{run.model}-{run.data}")
        must_be_a_folder(run.out, "--out")
        if not args.overwrite:
            refuse_to_overwrite(run.out)
        model = new_model(run)
    device, _ = choose_device(run.device, run.precision)
    rank, world = distributed.join(device)
    augment = dict(scale=0.2, shift=0.1) if run.scale_shift else True
    with distributed.first_process_per_machine_first(world):  # a missing npz is downloaded once per machine
        train_set = make_dataset(run.data, "train", run.data_root, run.size, augment=augment, seed=run.seed,
                                 limit=run.limit)
        val_set = make_dataset(run.data, "val", run.data_root, run.size, limit=run.limit)
    if rank == 0:
        for note in dict.fromkeys(train_set.notes + val_set.notes):  # each once (train and val share most)
            say(f"note: {note}")
    flags = {k: getattr(run, k) for k in RUN_FLAGS}
    history = fit(model, train_set, val_set, run.out, epochs=run.epochs, batch_size=run.batch_size, lr=run.lr,
                  loss_fn=LOSSES[run.loss](), ema_decay=run.ema, tta=run.tta, tune_threshold=run.tune_threshold,
                  device=device, precision=run.precision, workers=run.workers, seed=run.seed, resume=state,
                  run_info=dict(run=flags), log=lambda line: print(line, flush=True))
    if rank == 0:  # under torchrun, rank 0 alone reports
        best = max(history, key=lambda row: row["val_dice"])
        print(f"best validation Dice {best['val_dice']:.4f} (Jaccard {best['val_jaccard']:.4f}) at epoch "
              f"{best['epoch']}; wrote {run.out}/best.pt, last.pt, history.csv, curves.png")


# ---------------------------------------------------------------------------------------------------------
# evaluate and predict

def evaluate_command(args):
    state, model = open_checkpoint(args.checkpoint)
    if args.report:
        must_be_writable(args.report, "--report")
    for path, flag in ((args.json, "--json"), (args.figure, "--figure")):
        if path:
            must_be_a_file_name(path, flag)
    dataset = make_dataset(args.data, args.split, args.data_root, state["size"], limit=args.limit,
                           skip_unreadable=True)
    for message in dataset.skipped:
        say(f"skipped: {message}")
    for note in dataset.notes:
        say(f"note: {note}")
    threshold, cases = args.threshold or state.get("threshold", 0.5), [] if args.report else None
    scores = evaluate(model, dataset, device=args.device, batch_size=args.batch_size, per_image=True, tta=args.tta,
                      threshold=threshold, postprocess=args.postprocess, workers=args.workers, collect=cases)
    names = ("dice", "jaccard", "threshold_jaccard", "accuracy", "sensitivity", "specificity")
    skipped = f" ({len(dataset.skipped)} unreadable skipped)" if dataset.skipped else ""
    print(f"{scores['count']} images of {args.data} {args.split}{skipped}, scored at the ground truth's "
          f"resolution:")
    for name in names:
        print(f"  {name:<18} {scores[name]:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**{name: scores[name] for name in names + ("count",)}, "skipped": len(dataset.skipped)},
                      f, indent=2)
    if args.figure:
        draw_cases(model, dataset, scores, args.figure, args.device, threshold)
    if args.report:
        per, run = scores["per_image"], run_summary(args, state, threshold)
        rows = [dict({name: per[name][k].item() for name in REPORT_SCORES}, id=image_id)
                for k, image_id in enumerate(scores["ids"])]
        for row in rows:
            row["flags"] = image_flags(row["predicted_area"], row["lesion_area"], row["jaccard"])
        curve = (list(THRESHOLDS), [scores["dice_by_threshold"][t] for t in THRESHOLDS], threshold)
        path = write_report(args.report, dict(run, split=args.split, images=scores["count"]), rows,
                            {case[0]: case[1:] for case in cases}, curve)
        print(f"wrote {path} and per_image.csv")


def run_summary(args, state, threshold):
    """What a report says of the run at its top: the checkpoint, model, data and decision rule."""
    data = f"{args.data} ({args.data_root})" if getattr(args, "data_root", None) else getattr(args, "data", None)
    return {"checkpoint": args.checkpoint, "model": f"{state['model']} {state['model_args']}",
            "trained": f"epoch {state.get('epoch', '?')}, validation Dice {state.get('best_dice', float('nan')):.4f}",
            **({"data": data} if data else {}), "threshold": threshold,
            "test-time augmentation": "on" if args.tta else "off",
            "post-processing": "largest region, holes filled" if args.postprocess else "off"}


def must_be_a_file_name(path, flag):
    """Make the folder of the file `path` if missing; DataError when `path` is a folder (before any work)."""
    if os.path.isdir(path):
        example = os.path.join(path, "metrics.json" if flag == "--json" else "cases.png")
        raise DataError(f"{flag} {path} is a folder: pass a file name, such as {example}")
    blocker = file_in_the_way(os.path.dirname(path))
    if blocker:
        raise DataError(f"{flag} {path}: {blocker} is a file, not a folder: pass a file name in a folder")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def must_be_writable(folder, flag):
    """DataError when `folder` (made when written to) is a file or cannot be written to: before any work, and
    before anything is written."""
    must_be_a_folder(folder, flag)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing) or "."
    if not os.access(existing, os.W_OK):
        raise DataError(f"{flag} {folder} cannot be written to: pass a folder you can write to")


def draw_cases(model, dataset, scores, path, device, threshold, n=3):
    """The n worst and n best images by Dice, with their true and predicted masks (predicted on `device`)."""
    from .inference import probabilities
    from .plots import plot_cases

    device, _ = choose_device(device, "fp32")
    dice = scores["per_image"]["dice"]
    order = torch.argsort(dice).tolist()
    picked = order[:n] + order[-n:] if len(order) > 2 * n else order
    images, masks, preds, titles = [], [], [], []
    for i in picked:
        image, mask, image_id = dataset[i]
        probs = probabilities(model.eval().to(device), image[None].to(device))  # (1, 1, S, S)
        images.append(image)
        masks.append(mask)
        preds.append((probs[0].cpu() > threshold).float())
        titles.append(f"{image_id} Dice {dice[i]:.3f}")
    plot_cases(images, masks, preds, path, titles)


def predict_command(args):
    must_be_a_folder(args.output, "--output")
    if args.report:
        must_be_writable(args.report, "--report")
    state, model = open_checkpoint(args.checkpoint)
    if os.path.isdir(args.input):
        paths = sorted(os.path.join(args.input, f) for f in os.listdir(args.input)
                       if f.lower().endswith(IMAGE_EXTENSIONS) and not f.endswith((MASK_SUFFIX, OVERLAY_SUFFIX)))
    elif os.path.isfile(args.input):
        paths = [args.input]
    else:
        raise DataError(f"--input {args.input}: no such file or folder")
    if not paths:
        raise DataError(f"--input {args.input} holds no .jpg, .jpeg or .png image")
    threshold, cases = args.threshold or state.get("threshold", 0.5), [] if args.report else None
    written, skipped = predict(model, paths, args.output, state["size"], device=args.device, overlay=args.overlay,
                               mean=state["mean"], std=state["std"], batch_size=args.batch_size,
                               compile=args.compile, threshold=threshold, tta=args.tta,
                               postprocess=args.postprocess, overwrite=args.overwrite, warn=say, collect=cases)
    print(f"wrote {written} segmentation(s) to {args.output}" + (f"; skipped {len(skipped)} unreadable "
                                                                  f"image(s)" if skipped else ""))
    if written == 0:
        raise DataError(f"none of the {len(paths)} image(s) in {args.input} could be read")
    if args.report:
        rows = [dict(id=stem, predicted_area=area, flags=image_flags(area)) for stem, _, _, area in cases]
        run = dict(run_summary(args, state, threshold), input=args.input, images=written)
        path = write_report(args.report, run, rows, {stem: (image, None, mask) for stem, image, mask, _ in cases})
        print(f"wrote {path} and per_image.csv")
