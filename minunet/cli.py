"""The command line: `minunet train | evaluate | predict` (also `python -m minunet ...`).

A user error (missing data, a bad checkpoint, a bad flag) prints one line on stderr and exits with code 2.
"""
import argparse
import json
import math
import os
import pickle
import sys

import torch
import torch.distributed as dist

from .data import IMAGE_EXTENSIONS, make_dataset
from .errors import CheckpointError, DataError, SettingError, TrainingError, one_line
from .train import (build_model, distributed_setup, evaluate, fit,
                    load_checkpoint, logits_of, model_from_checkpoint, pick_device, predict)

USER_ERRORS = (DataError, CheckpointError, TrainingError, SettingError)
RUN_FILES = ("best.pt", "last.pt", "history.csv")
RESUME_KEYS = ("size", "mean", "std", "run", "epoch", "history", "best_dice", "optimizer", "scheduler", "scaler",
               "rng_state")


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line on stderr (exit 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = Parser(prog="minunet", description="Skin-lesion segmentation with U-Nets (ISIC 2016).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    data_flags = Parser(add_help=False)
    data_flags.add_argument("--data", choices=["isic2016", "synthetic"], default="synthetic",
                            help="ISIC 2016, or synthetic lesions made on the fly (offline; default)")
    data_flags.add_argument("--data-root", metavar="DIR",
                            help="ISIC 2016 challenge folders, or medsegbench's npz files (default ~/.medsegbench)")
    data_flags.add_argument("--limit", type=positive, metavar="N", help="use at most N images of each split")
    data_flags.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")

    t = sub.add_parser("train", parents=[data_flags], help="train a model, keeping the best checkpoint",
                       description="Train a U-Net on lesion images; writes best.pt, last.pt, history.csv and "
                                   "curves.png into --out.")
    t.add_argument("--model", choices=["unet", "resunet34"], default="unet")
    t.add_argument("--size", type=image_size, default=128,
                   help="images are resized to size x size, at least 32 (default 128)")
    t.add_argument("--epochs", type=positive, default=20)
    t.add_argument("--batch-size", type=positive, default=16, help="global batch size (default 16)")
    t.add_argument("--lr", type=learning_rate, default=1e-3, help="peak learning rate of Adam (default 1e-3)")
    t.add_argument("--encoder-weights", default="none", metavar="{imagenet,none,PATH}",
                   help="resunet34's encoder: torchvision's ImageNet weights, random (default), or a file")
    t.add_argument("--base-channels", type=positive, default=64, help="unet's width (default 64)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: bf16 on a CPU with native bf16, mixed precision on CUDA, fp32 elsewhere")
    t.add_argument("--out", metavar="DIR", help="output folder (default runs/<model>-<data>)")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue the run of this last.pt")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")

    e = sub.add_parser("evaluate", parents=[data_flags], help="score a checkpoint with the ISIC metrics",
                       description="Print the mean ISIC 2016 metrics of a checkpoint on a split, scored at "
                                   "each ground-truth mask's own resolution.")
    e.add_argument("--checkpoint", required=True, metavar="CKPT")
    e.add_argument("--split", choices=["val", "test"], default="val")
    e.add_argument("--batch-size", type=positive, default=16)
    e.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    e.add_argument("--figure", metavar="FILE", help="draw the worst and best cases into this PNG")

    p = sub.add_parser("predict", help="segment image files",
                       description="Write <stem>_Segmentation.png (0/255, the image's own size) for each image.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--input", required=True, metavar="FILE_OR_FOLDER")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=positive, default=16, help="images per forward pass (default 16)")
    p.add_argument("--compile", action="store_true",
                   help="compile the model with torch.compile first: 30 to 60 s of start-up, then faster; "
                        "worth it for hundreds of images (needs a C++ compiler on the CPU)")
    return parser


def positive(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def image_size(text):
    """argparse type: an integer >= 32 (the U-Nets halve the image five times)."""
    value = positive(text)
    if value < 32:
        raise argparse.ArgumentTypeError(f"{text} is too small: the U-Nets need images of at least 32 x 32")
    return value


def learning_rate(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a number above 0, such as 1e-3")
    return value


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
        raise CheckpointError(f"cannot load the encoder weights: {' '.join(str(err).split())}") from None
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


def must_be_a_folder(path, flag):
    """Raise DataError when `path` exists and is not a folder."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise DataError(f"{flag} {path} is a file, not a folder: pass a folder (it is made if missing)")


def refuse_to_overwrite(out, resume=None):
    """Raise TrainingError when `out` holds another run than the one being resumed."""
    taken = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
    if taken and not (resume and os.path.samefile(out, os.path.dirname(os.path.abspath(resume)))):
        raise TrainingError(f"{out} already holds a run ({', '.join(taken)}): pass --resume "
                            f"{os.path.join(out, 'last.pt')} to continue it, --overwrite to replace "
                            f"it, or another --out")


def train(args):
    if args.resume:
        state, model = open_checkpoint(args.resume, RESUME_KEYS, "cannot be resumed",
                                       "pass a last.pt (best.pt keeps no optimizer state)")
        run = argparse.Namespace(**state["run"])  # the flags of the run being continued
        run.device, run.out = args.device, args.out or os.path.dirname(os.path.abspath(args.resume))
        must_be_a_folder(run.out, "--out")
        if not args.overwrite:
            refuse_to_overwrite(run.out, args.resume)
    else:
        run, state = args, None
        run.out = run.out or os.path.join("runs", f"{run.model}-{run.data}")
        must_be_a_folder(run.out, "--out")
        if not args.overwrite:
            refuse_to_overwrite(run.out)
        model = new_model(run)
    # under torchrun one process per machine reads the data first, so that a missing npz is downloaded once
    rank, world = distributed_setup(pick_device(run.device))
    first_here = int(os.environ.get("LOCAL_RANK", "0")) == 0
    if world > 1 and not first_here:
        dist.barrier()
    train_set = make_dataset(run.data, "train", run.data_root, run.size, augment=True, seed=run.seed,
                             limit=run.limit)
    val_set = make_dataset(run.data, "val", run.data_root, run.size, limit=run.limit)
    if world > 1 and first_here:
        dist.barrier()
    flags = {k: getattr(run, k) for k in ("model", "data", "data_root", "size", "epochs", "batch_size", "lr",
                                          "encoder_weights", "base_channels", "limit", "seed", "precision")}
    history = fit(model, train_set, val_set, run.out, epochs=run.epochs, batch_size=run.batch_size, lr=run.lr,
                  device=run.device, precision=run.precision, seed=run.seed, resume=state,
                  run_info=dict(run=flags), log=lambda line: print(line, flush=True))
    if rank == 0 and history:  # under torchrun, rank 0 alone reports
        best = max(history, key=lambda row: row["val_dice"])
        print(f"best validation Dice {best['val_dice']:.4f} (Jaccard {best['val_jaccard']:.4f}) at epoch "
              f"{best['epoch']}; wrote {run.out}/best.pt, last.pt, history.csv, curves.png")


# ---------------------------------------------------------------------------------------------------------
# evaluate and predict

def evaluate_command(args):
    state, model = open_checkpoint(args.checkpoint)
    dataset = make_dataset(args.data, args.split, args.data_root, state["size"], limit=args.limit,
                           skip_unreadable=True)
    for message in dataset.skipped:
        say(f"skipped: {message}")
    scores = evaluate(model, dataset, device=args.device, batch_size=args.batch_size, per_image=True)
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
        draw_cases(model, dataset, scores, args.figure, pick_device(args.device))


def draw_cases(model, dataset, scores, path, device, n=3):
    """The n worst and n best images by Dice, with their true and predicted masks (predicted on `device`)."""
    from .plots import plot_cases

    dice = scores["per_image"]["dice"]
    order = torch.argsort(dice).tolist()
    picked = order[:n] + order[-n:] if len(order) > 2 * n else order
    images, masks, preds, titles = [], [], [], []
    for i in picked:
        image, mask, image_id = dataset[i]
        logits = logits_of(model.eval().to(device), image[None].to(device), amp_dtype=None)  # (1, 1, S, S)
        images.append(image)
        masks.append(mask)
        preds.append((logits[0].cpu() > 0).float())
        titles.append(f"{image_id} Dice {dice[i]:.3f}")
    plot_cases(images, masks, preds, path, titles)


def predict_command(args):
    must_be_a_folder(args.output, "--output")
    state, model = open_checkpoint(args.checkpoint)
    if os.path.isdir(args.input):
        paths = sorted(os.path.join(args.input, f) for f in os.listdir(args.input)
                       if f.lower().endswith(IMAGE_EXTENSIONS) and not f.endswith(("_Segmentation.png",
                                                                                    "_overlay.png")))
    elif os.path.isfile(args.input):
        paths = [args.input]
    else:
        raise DataError(f"--input {args.input}: no such file or folder")
    if not paths:
        raise DataError(f"--input {args.input} holds no .jpg, .jpeg or .png image")
    written, skipped = predict(model, paths, args.output, state["size"], device=args.device,
                               overlay=args.overlay, mean=state["mean"], std=state["std"],
                               batch_size=args.batch_size, compile=args.compile, warn=say)
    print(f"wrote {written} segmentation(s) to {args.output}" + (f"; skipped {len(skipped)} unreadable "
                                                                  f"image(s)" if skipped else ""))
    if written == 0:
        raise DataError(f"none of the {len(paths)} image(s) in {args.input} could be read")


def main(argv=None):
    args = build_parser().parse_args(argv)
    command = {"train": train, "evaluate": evaluate_command, "predict": predict_command}[args.command]
    try:
        command(args)
    except USER_ERRORS as err:
        say(f"minunet {args.command}: error: {err}")
        return 2
    except OSError as err:  # a folder that cannot be made, a full disk, no permission, ...
        say(f"minunet {args.command}: error: " + (f"{err.filename}: {err.strerror}" if err.filename else f"{err}"))
        return 2
    except KeyboardInterrupt:
        say(f"minunet {args.command}: interrupted")
        return 130
    return 0
