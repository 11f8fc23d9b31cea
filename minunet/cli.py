"""The command line: `minunet train | evaluate | predict` (also `python -m minunet ...`).

A user error (missing data, a bad checkpoint, a bad flag, too little memory) prints one line on stderr and
exits with code 2; nothing already on disk is replaced unless the user asked (--overwrite).
"""
import argparse
import math

import torch

from .checkpoint import MODELS
from .commands import evaluate_command, predict_command, say, train_command
from .errors import CheckpointError, DataError, SettingError, TrainingError, one_line
from .losses import DEFAULT_LOSS, LOSSES

USER_ERRORS = (DataError, CheckpointError, TrainingError, SettingError)
MAX_SEED = 2 ** 32 - 1


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line on stderr (exit 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind, low, high=None, low_open=False, high_open=False, example=""):
    """An argparse type: `kind` (int or float), finite, from `low` to `high` (each excluded if *_open)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") \
                from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or \
                (high is not None and (value > high or (high_open and value == high))):
            bounds = f"a number above {low}" if low_open else f"at least {low}"
            bounds += (f" and below {high}" if high_open else f" and at most {high}") if high is not None else ""
            raise argparse.ArgumentTypeError(f"{text} must be {bounds}{example}")
        return value
    return parse


positive = number(int, 1)
batch_size = number(int, 1, 65536)
fraction = number(float, 0, 1, low_open=True, high_open=True)  # 1 would be degenerate: no lesion, or no update


def image_size(text):
    """argparse type: one side (128: a square) or HxW (192x256), each from 32 (the U-Nets halve an image five
    times) to 4096."""
    parts = text.lower().split("x")
    if len(parts) > 2 or not all(part.strip().isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: pass one number (128) or HxW (192x256)")
    sides = [int(part) for part in parts]
    if min(sides) < 32:
        raise argparse.ArgumentTypeError(f"{text} is too small: the U-Nets need images of at least 32 x 32")
    if max(sides) > 4096:
        raise argparse.ArgumentTypeError(f"{text} is too large: images of at most 4096 x 4096")
    return sides[0] if len(sides) == 1 or sides[0] == sides[1] else tuple(sides)


def build_parser():
    parser = Parser(prog="minunet", description="Skin-lesion segmentation with U-Nets (ISIC 2016).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    data_flags = Parser(add_help=False)
    data_flags.add_argument("--data", choices=["isic2016", "folder", "synthetic"], default="synthetic",
                            help="ISIC 2016; your own folder (DIR/images, DIR/masks); or synthetic lesions made "
                                 "on the fly (offline; default)")
    data_flags.add_argument("--data-root", metavar="DIR",
                            help="ISIC 2016 challenge folders or medsegbench's npz files (default ~/.medsegbench); "
                                 "for --data folder, the folder")
    data_flags.add_argument("--limit", type=positive, metavar="N", help="use at most N images of each split")
    data_flags.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    data_flags.add_argument("--workers", type=number(int, 0, 64), metavar="N",
                            help="DataLoader worker processes (default: up to 8 on a GPU, 0 on a CPU)")
    infer_flags = Parser(add_help=False)
    infer_flags.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                             help="average the predictions of the image and its three flips: 4 forward passes "
                                  "(default; --no-tta: one pass)")
    infer_flags.add_argument("--threshold", type=fraction, metavar="T",
                             help="lesion where the probability is above T (default: the checkpoint's, else 0.5)")
    infer_flags.add_argument("--postprocess", action="store_true",
                             help="keep the largest lesion region and fill its holes")
    infer_flags.add_argument("--report", metavar="DIR", help="write report.html and per_image.csv into DIR")

    t = sub.add_parser("train", parents=[data_flags], help="train a model, keeping the best checkpoint",
                       description="Train a U-Net on lesion images; writes best.pt, last.pt, history.csv and "
                                   "curves.png into --out.")
    t.add_argument("--model", choices=list(MODELS), default="unet")
    t.add_argument("--size", type=image_size, default=128,
                   help="images are resized to size x size, or HxW such as 192x256 (default 128)")
    t.add_argument("--epochs", type=positive, help="epochs to train (default 20)")
    t.add_argument("--batch-size", type=batch_size, default=16, help="global batch size (default 16)")
    t.add_argument("--lr", type=number(float, 0, 1, low_open=True, example=", such as 1e-3"), default=1e-3,
                   help="peak learning rate of Adam (default 1e-3)")
    t.add_argument("--loss", choices=list(LOSSES), default=DEFAULT_LOSS,
                   help=f"the training loss (default {DEFAULT_LOSS}: BCE + soft Jaccard)")
    t.add_argument("--ema", type=fraction, metavar="DECAY",
                   help="validate and keep an exponential moving average of the weights, e.g. 0.99")
    t.add_argument("--scale-shift", action="store_true",
                   help="also zoom (x0.8 to x1.2) and shift (up to 10 %%) images and masks when augmenting")
    t.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                   help="validate with the average over the image and its three flips (default; --no-tta: one pass)")
    t.add_argument("--tune-threshold", action="store_true",
                   help="store in best.pt the threshold with the best validation Dice (else 0.5)")
    t.add_argument("--encoder-weights", default="imagenet", metavar="{imagenet,none,PATH}",
                   help="resunet34's encoder: torchvision's ImageNet weights (default; downloaded once), none "
                        "(random: from scratch), or the path of resnet34-b627a593.pth")
    t.add_argument("--base-channels", type=number(int, 1, 256), default=16,
                   help="unet's width (default 16: as accurate as 32 in cross-validation, in under half the time)")
    t.add_argument("--seed", type=number(int, 0, MAX_SEED), default=0)
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: bf16 on a CPU with native bf16, mixed precision on CUDA, fp32 elsewhere")
    t.add_argument("--out", metavar="DIR", help="output folder (default runs/<model>-<data>)")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue the run of this last.pt")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")

    e = sub.add_parser("evaluate", parents=[data_flags, infer_flags], help="score a checkpoint with the ISIC metrics",
                       description="Print the mean ISIC 2016 metrics of a checkpoint on a split, scored at "
                                   "each ground-truth mask's own resolution.")
    e.add_argument("--checkpoint", required=True, metavar="CKPT")
    e.add_argument("--split", choices=["val", "test"], default="val")
    e.add_argument("--batch-size", type=batch_size, default=16)
    e.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    e.add_argument("--figure", metavar="FILE", help="draw the worst and best cases into this PNG")

    p = sub.add_parser("predict", parents=[infer_flags], help="segment image files",
                       description="Write <stem>_Segmentation.png (0/255, the image's own size) for each image.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--input", required=True, metavar="FILE_OR_FOLDER")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    p.add_argument("--overwrite", action="store_true", help="replace segmentations already in --output")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=batch_size, default=16, help="images per forward pass (default 16)")
    p.add_argument("--compile", action="store_true",
                   help="compile the model with torch.compile first: 30 to 60 s of start-up, then faster; "
                        "worth it for hundreds of images (needs a C++ compiler on the CPU)")
    return parser


def out_of_memory(err):
    """Whether `err` is the allocator running out of memory (CPU or GPU)."""
    return isinstance(err, torch.OutOfMemoryError) or (isinstance(err, RuntimeError) and any(
        text in str(err) for text in ("can't allocate memory", "not enough memory", "out of memory")))


def main(argv=None):
    args = build_parser().parse_args(argv)
    command = {"train": train_command, "evaluate": evaluate_command, "predict": predict_command}[args.command]
    try:
        command(args)
    except USER_ERRORS as err:
        say(f"minunet {args.command}: error: {err}")
        return 2
    except OSError as err:  # a folder that cannot be made, a full disk, no permission, ...
        say(f"minunet {args.command}: error: " + (f"{err.filename}: {err.strerror}" if err.filename else f"{err}"))
        return 2
    except (RuntimeError, MemoryError) as err:
        if not (isinstance(err, MemoryError) or out_of_memory(err)):
            raise
        detail = f" ({one_line(err, 120)})" if str(err) else ""  # a plain MemoryError has no text
        advice = "--batch-size or --size or --base-channels" if args.command == "train" else "--batch-size"
        say(f"minunet {args.command}: error: out of memory{detail}: lower {advice}")
        return 2
    except KeyboardInterrupt:
        say(f"minunet {args.command}: interrupted")
        return 130
    return 0
