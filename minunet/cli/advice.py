"""The core's errors in the command's words: a UserError's fixes name the arguments of the core (make_dataset's,
Runtime's, the Recipe's, ResNet34UNet's); here each becomes the flag that sets it, said only where the command
in hand has that flag, the flag's type takes the value, and a run being resumed leaves it free to change."""
import argparse
from dataclasses import fields

from ..recipe import Recipe
from .rundir import DATA_FLAGS

FLAGS = {  # a core argument -> the flag that sets it
    "name": "--data", "root": "--data-root", "split": "--split", "size": "--size", "classes": "--classes",
    "channels": "--channels", "batch_size": "--batch-size", "device": "--device", "precision": "--precision",
    "encoder_weights": "--encoder-weights", "threshold": "--threshold", "postprocess": "--postprocess",
    "tune_threshold": "--tune-threshold",
}


def error_line(err, parser, args):
    """The text of a UserError for the command of `parser` (its own parser, which parsed `args`): its fixes as
    the flags that command takes."""
    return err.line(lambda name, value: flag_words(name, value, parser, args), sep=" ")


def flag_words(name, value, parser, args):
    """("--flag", the value as typed; None to leave the flag out) for a core argument and value, or None where
    the command cannot take it: no such flag, a value its type or choices refuse (--classes stops at 255), or a
    flag --resume must leave as the run has it."""
    action = parser._option_string_actions.get(FLAGS.get(name))  # argparse lists its flags nowhere public
    if action is None or action.dest in fixed_by_the_run(args):
        return None
    if value is None:
        return action.option_strings[0], None
    text = str(value)
    try:
        typed = action.type(text) if action.type else text
    except (argparse.ArgumentTypeError, TypeError, ValueError):
        return None
    if action.choices is not None and typed not in action.choices:
        return None
    return action.option_strings[0], text


def fixed_by_the_run(args):
    """The settings that --resume takes from the run, which a flag may not change (its data root aside)."""
    if not getattr(args, "resume", None):
        return set()
    return ({f.name for f in fields(Recipe)} | set(DATA_FLAGS)) - {"data_root"}
