"""The training recipe: every choice that decides what a run learns, declared once.

`Recipe()` holds the defaults. `fit()` runs them when given no recipe, and `minunet train` builds one flag per
field from the declarations below (help, type, default), so the library and the command line cannot drift
apart. A checkpoint stores the recipe it was trained with (its "run" dict), and `Recipe.of_run` reads it back.
The defaults were chosen by paired cross-validation on the ISIC images at hand (bench/RESULTS.md): BCE +
Jaccard and flip TTA paid; EMA, zoom and shift, and a tuned threshold did not, so they stay off.

To add a training option: one field here, then its use (in train.py, data.py or models.py).
"""
import argparse
import dataclasses
from dataclasses import dataclass, field, fields

from . import argtypes
from .losses import LOSSES
from .models import MODELS

SCALE_SHIFT = dict(scale=0.2, shift=0.1)  # --scale-shift: zoom by x0.8 to x1.2, shift by up to 10 %


def option(default, help, was=dataclasses.MISSING, **flag):
    """A recipe field: its default; the help and argparse settings (type, choices, action, metavar) of its
    --flag; and `was`, the value of runs recorded before the field existed (for resuming them), if it differs
    from the default."""
    return field(default=default, metadata=dict(help=help, flag=flag, was=default if was is dataclasses.MISSING
                                                else was))


@dataclass(frozen=True)
class Recipe:
    """What a training run does, with the cross-validated defaults (see the module docstring)."""
    model: str = option("unet", "the model", choices=MODELS)
    base_channels: int = option(16, "unet's width (16: as accurate as 32 in cross-validation, in under half the "
                                "time)", type=argtypes.number(int, 1, 256))
    encoder_weights: str = option("imagenet", "resunet34's encoder: torchvision's ImageNet weights (downloaded "
                                  "once), none (random: from scratch), or the path of resnet34-b627a593.pth",
                                  metavar="{imagenet,none,PATH}")
    size: object = option(128, "images are resized to size x size, or HxW such as 192x256",
                          type=argtypes.image_size)
    epochs: int = option(20, "epochs to train", type=argtypes.positive)
    batch_size: int = option(16, "global batch size", type=argtypes.batch_size)
    lr: float = option(1e-3, "peak learning rate of Adam",
                       type=argtypes.number(float, 0, 1, low_open=True, example=", such as 1e-3"))
    loss: str = option("bce_jaccard", "the training loss (bce_jaccard: BCE + soft Jaccard)", was="bce_dice",
                       choices=LOSSES)
    ema: object = option(None, "validate and keep an exponential moving average of the weights, e.g. 0.99",
                         type=argtypes.fraction, metavar="DECAY")
    scale_shift: bool = option(False, "also zoom (x0.8 to x1.2) and shift (up to 10 %%) images and masks when "
                               "augmenting", action="store_true")
    tta: bool = option(True, "validate (and, in evaluate and predict, predict) with the average over the image "
                       "and its three flips; --no-tta: one pass", was=False, action=argparse.BooleanOptionalAction)
    tune_threshold: bool = option(False, "store in best.pt the threshold with the best validation Dice (else "
                                  "0.5)", action="store_true")
    seed: int = option(0, "seeds the initial weights, the order of the images and every augmentation",
                       type=argtypes.seed)

    @classmethod
    def of_run(cls, run):
        """The recipe a checkpoint's "run" dict records; fields it lacks (older runs) take their `was` value."""
        return cls(**{f.name: run.get(f.name, f.metadata["was"]) for f in fields(cls)})

    def augmentation(self):
        """make_dataset's `augment` for the training split: True (rotation, flips, colour jitter), or with
        --scale-shift the options that add zoom and shift (SCALE_SHIFT)."""
        return dict(SCALE_SHIFT) if self.scale_shift else True


def add_flags(parser):
    """One --flag per Recipe field, with its help and type. Each flag is absent from the parsed arguments
    unless given (argparse.SUPPRESS), so a resumed run can tell the flags a user passed; `recipe_of` fills
    in the defaults."""
    for f in fields(Recipe):
        default = f.default if type(f.default) in (int, float, str) else "on" if f.default else "off"  # bool, None
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=argparse.SUPPRESS,
                            help=f"{f.metadata['help']} (default {default})", **f.metadata["flag"])


def given(args):
    """{field: value} of the Recipe flags that the user passed."""
    return {f.name: getattr(args, f.name) for f in fields(Recipe) if hasattr(args, f.name)}


def recipe_of(args, base=None):
    """The Recipe of parsed arguments: the flags given, the rest from `base` (default: Recipe())."""
    return dataclasses.replace(base or Recipe(), **given(args))
