"""train's recipe flags: one --flag per field of minunet.recipe.Recipe, with the field's default and
description, and the type that checks what a user types; what they mean for data of several classes."""
import argparse
import dataclasses
from dataclasses import fields

from ..data.modality import ORIENTATIONS, kind_of
from ..losses import LOSSES, loss_label, loss_name
from ..models import MODELS
from ..recipe import Recipe
from ..training.epoch import check_threshold_tuning
from . import argtypes

# how each Recipe field is typed on the command line (argparse settings); its help is the field's `about`
RECIPE_FLAGS = dict(
    model=dict(choices=MODELS, help="the model"),
    base_channels=dict(type=argtypes.number(int, 1, 256)),
    encoder_weights=dict(metavar="{imagenet,none,PATH}"),
    size=dict(type=argtypes.image_size, help="images are resized to size x size, or HxW such as 192x256"),
    epochs=dict(type=argtypes.positive),
    batch_size=dict(type=argtypes.batch_size),
    lr=dict(type=argtypes.number(float, 0, 1, low_open=True, example=", such as 1e-3")),
    loss=dict(choices=LOSSES),
    ema=dict(type=argtypes.fraction, metavar="DECAY"),
    orientation=dict(choices=("auto", *ORIENTATIONS)),
    scale_shift=dict(action="store_true"),
    tta=dict(action=argparse.BooleanOptionalAction, help="validate (and, in evaluate and predict, predict) with "
             "the average over the image and its flips (three; the left-right one alone for upright images); "
             "--no-tta: one pass"),
    tune_threshold=dict(action="store_true", help="store in best.pt the threshold with the best validation Dice "
                                                  "(else 0.5)"),
    seed=dict(type=argtypes.seed),
)


def add_recipe_flags(parser):
    """One --flag per Recipe field. Each flag is absent from the parsed arguments unless given
    (argparse.SUPPRESS), so a resumed run can tell the flags a user passed; `recipe_of` fills in the defaults."""
    for f in fields(Recipe):
        settings = dict(RECIPE_FLAGS[f.name])
        about = settings.pop("help", f.metadata["about"]).replace("%", "%%")  # argparse formats help with %
        default = f.default if type(f.default) in (int, float, str) else "on" if f.default else "off"  # bool, None
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=argparse.SUPPRESS,
                            help=f"{about} (default {default})", **settings)


def given(args):
    """{field: value} of the Recipe flags that the user passed."""
    return {f.name: getattr(args, f.name) for f in fields(Recipe) if hasattr(args, f.name)}


def recipe_of(args, base=None):
    """The Recipe of parsed arguments: the flags given, the rest from `base` (default: Recipe())."""
    return dataclasses.replace(base or Recipe(), **given(args))


def recipe_notes(recipe, spec, given_flags):
    """The notes on train's recipe flags for data of `spec`'s classes; SettingError for a flag they cannot use.
    For K > 2 classes each pixel takes its most probable class, as with MONAI's argmax: --tune-threshold has no
    threshold to tune and is refused; a --loss naming BCE trains its softmax counterpart, cross-entropy (as
    MONAI's DiceCELoss and smp do for several classes), which the note says. given_flags: given(args)."""
    check_threshold_tuning(recipe, spec)
    trained = loss_name(recipe.loss, len(spec.classes))
    if "loss" not in given_flags or trained == recipe.loss:
        return []
    return [f"--loss {recipe.loss} with {len(spec.classes)} classes trains {trained}, {loss_label(trained)}: "
            f"cross-entropy of the softmax is BCE's counterpart for several classes"]


def orientation_note(recipe, name, given_flags):
    """The note, where the data made the recipe upright (minunet.data.modality), on what that allows in
    augmentation and TTA and the flag that says otherwise; none when --orientation was given, nor for images
    with no up, which train as ISIC's always have."""
    if "orientation" in given_flags or recipe.orientation != "upright":
        return []
    kind = kind_of(name, colour=False)  # upright by the data: a named modality, or a folder of gray images
    degrees = ORIENTATIONS[recipe.orientation]["degrees"]
    return [f"{kind} have an up: training flips them left-right only and turns them by up to {degrees} degrees, "
            f"and TTA averages {ORIENTATIONS['upright']['views']} (--orientation any: every way)"]
