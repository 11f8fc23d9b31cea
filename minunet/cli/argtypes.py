"""Types for command-line flags: numbers within a range, image sizes. Each parses one flag's text or raises
argparse.ArgumentTypeError, whose message argparse prints as one line."""
import argparse
import math

MAX_SEED = 2 ** 32 - 1


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
seed = number(int, 0, MAX_SEED)


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
