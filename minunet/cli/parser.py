"""The command line: `minunet train | evaluate | predict | export` (also `python -m minunet ...`).

A user error (missing data, a bad checkpoint, a bad flag, too little memory) prints one line on stderr and
exits with code 2; nothing already on disk is replaced unless the user asked (--overwrite).
"""
import argparse

from .argtypes import batch_size, fraction, number, positive
from .. import __version__
from ..recipe import Recipe
from .flags import add_recipe_flags
from .commands import evaluate_command, predict_command, say, train_command
from ..data import data_names
from ..device import Runtime
from ..errors import UserError, one_line, out_of_memory
from .advice import error_line
from .export import add_export_parser, export_command
from .rundir import DATA_DEFAULTS

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")  # --precision of train, evaluate and predict (minunet.device)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line on stderr (exit 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def make_data_flags(given_only):
    """The flags that say which data and where they run: --data, --data-root, --limit, --device, --workers.
    given_only (train): --data, --data-root and --limit are left out of the parsed arguments unless given, so
    that --resume can tell them (minunet.cli.rundir.DATA_DEFAULTS fills them in)."""
    default = (lambda value: argparse.SUPPRESS) if given_only else (lambda value: value)
    flags = Parser(add_help=False)
    flags.add_argument("--data", choices=data_names(), metavar="NAME", default=default(DATA_DEFAULTS["data"]),
                       help="a MedSegBench dataset by name (isic2016, kvasir, busi, wbc, ...: every name in "
                            "medsegbench.info.INFO; isic2016 and isic2018 also read their challenge's folders, "
                            "isic2017 only those); folder: your own (DIR/images, DIR/masks); or synthetic lesions "
                            "made on the fly (offline; default)")
    flags.add_argument("--data-root", metavar="DIR", default=default(DATA_DEFAULTS["data_root"]),
                       help="ISIC 2016 challenge folders or medsegbench's npz files (default ~/.medsegbench); for "
                            "--data folder, the folder")
    flags.add_argument("--limit", type=positive, metavar="N", default=default(DATA_DEFAULTS["limit"]),
                       help="use at most N images of each split")
    flags.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    flags.add_argument("--workers", type=number(int, 0, 64), metavar="N",
                       help="DataLoader worker processes (default: up to 8 on a GPU, 0 on a CPU)")
    return flags


def build_parser():
    """The parser of `minunet train | evaluate | predict`: train's recipe flags come from minunet.cli.flags."""
    parser = Parser(prog="minunet", description="Skin-lesion segmentation with U-Nets (ISIC 2016).")
    parser.add_argument("--version", action="version", version=f"minunet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    data_flags = make_data_flags(given_only=False)
    infer_flags = Parser(add_help=False)
    infer_flags.add_argument("--tta", action=argparse.BooleanOptionalAction, default=Recipe.tta,
                             help="average the predictions of the image and its three flips: 4 forward passes "
                                  "(default on, as trained; --no-tta: one pass)")
    infer_flags.add_argument("--threshold", type=fraction, metavar="T",
                             help="lesion where the probability is above T (default: the checkpoint's, else 0.5)")
    infer_flags.add_argument("--postprocess", action="store_true",
                             help="keep the largest lesion region and fill its holes")
    infer_flags.add_argument("--report", metavar="DIR", help="write report.html and per_image.csv into DIR")
    infer_flags.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                             help="fp32 (default: the masks an exported model gives), or as train's: auto (bf16 "
                                  "on a CPU with native bf16, mixed precision on CUDA), bf16, fp16: faster, and a "
                                  "few boundary pixels may differ")

    t = sub.add_parser("train", parents=[make_data_flags(given_only=True)],
                       help="train a model, keeping the best checkpoint",
                       description="Train a U-Net on lesion images; writes best.pt, last.pt, history.csv and "
                                   "curves.png into --out.")
    add_recipe_flags(t)  # the recipe: --model, --size, --epochs, --lr, --loss, --tta, ... (minunet.cli.flags)
    t.add_argument("--classes", type=number(int, 2, 255), metavar="K", default=argparse.SUPPRESS,
                   help="--data folder: masks are class indices 0..K-1 (8-bit gray or palette PNG); --data "
                        "synthetic: 3 adds an ink stroke class (default 2: lesion masks); a MedSegBench name has "
                        "its own")
    t.add_argument("--channels", type=int, choices=(1, 3), default=argparse.SUPPRESS,
                   help="1 reads the images as gray, 3 as RGB (default: a MedSegBench dataset's own; RGB for "
                        "--data folder and synthetic)")
    t.add_argument("--precision", choices=PRECISION_CHOICES, default=argparse.SUPPRESS,
                   help="auto (default): bf16 on a CPU with native bf16, mixed precision on CUDA, fp32 elsewhere")
    t.add_argument("--out", metavar="DIR", help="output folder (default runs/<model>-<data>)")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue the run of this last.pt")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")

    e = sub.add_parser("evaluate", parents=[data_flags, infer_flags], help="score a checkpoint with the ISIC metrics",
                       description="Print the mean ISIC 2016 metrics of a checkpoint on a split, scored at "
                                   "each ground-truth mask's own resolution.")
    e.add_argument("--checkpoint", required=True, metavar="CKPT")
    e.add_argument("--split", choices=["val", "test"], default="val")
    e.add_argument("--batch-size", type=batch_size, default=Runtime.batch_size)
    e.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    e.add_argument("--figure", metavar="FILE", help="draw the worst and best cases into this image file (.png, "
                                                     ".pdf, .svg, ...)")
    e.add_argument("--overwrite", action="store_true", help="replace the --json and --figure files if they exist")

    p = sub.add_parser("predict", parents=[infer_flags], help="segment image files",
                       description="Write <stem>_Segmentation.png (0/255, the image's own size) for each image.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--input", required=True, metavar="FILE_OR_FOLDER")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    p.add_argument("--overwrite", action="store_true", help="replace segmentations already in --output")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=batch_size, default=Runtime.batch_size,
                   help=f"images per forward pass (default {Runtime.batch_size})")
    p.add_argument("--compile", action="store_true",
                   help="compile the model with torch.compile first: 30 to 60 s of start-up, then faster; "
                        "worth it for hundreds of images (needs a C++ compiler on the CPU)")
    add_export_parser(sub, Parser)
    parser.commands = sub.choices  # each command's own parser: the flags it takes (minunet.cli.advice)
    return parser


def main(argv=None):
    """Run `minunet ARGV...`; return the exit code: 0, 2 for a user error (one line on stderr), 130 if stopped."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"train": train_command, "evaluate": evaluate_command, "predict": predict_command,
               "export": export_command}[args.command]
    try:
        command(args)
    except UserError as err:  # DataError, CheckpointError, SettingError, TrainingError
        say(f"minunet {args.command}: error: {error_line(err, parser.commands[args.command], args)}")
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
