"""Which batches a model's BatchNorm layers can train on: a check to run before training.

In training, BatchNorm normalises each channel over the batch and the map's height and width: B x h x w
values. One value has no spread, so torch refuses it ("Expected more than 1 value per channel when
training"). That happens only where a map is 1 x 1 and the batch is 1: a batch of 1 is fine for any map
larger than 1 x 1. The ResNet-34 U-Net's deepest map is 1/32 of the image (ceil(32 / 32) = 1 at size 32);
the U-Net's is 1/16 (at least 2 x 2 for any size >= 32), so the U-Net trains with a batch of 1 at any size.

    check_batchnorm(model, batch_size=1, size=(32, 32))   # SettingError for resunet34, nothing for unet
"""
import math

import torch
import torch.nn as nn

from ..errors import Fix, SettingError

MAX_SIZE = 4096  # the largest image side searched (the command line's largest size)


def smallest_batchnorm_map(model, size):
    """(h, w) of the smallest map any BatchNorm layer of `model` normalises for one image of size (H, W), or
    None when it has none. Found by one forward pass of a blank image (eval mode, no gradients: the model's
    weights, statistics and mode are as they were)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if not norms or first_conv is None:  # no BatchNorm, or not a model of images: nothing to check
        return None
    shapes = []  # each BatchNorm input's spatial shape: (h, w)
    hooks = [m.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape[2:])))
             for m in norms]
    parameter = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, first_conv.in_channels, *size, device=parameter.device))  # (1, C, H, W)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return min(shapes, key=math.prod)


def trains_on_one_image(model, size):
    """Whether every BatchNorm map of `model` holds more than one value for one image of size (H, W)."""
    smallest = smallest_batchnorm_map(model, size)
    return smallest is None or math.prod(smallest) > 1


def smallest_side(model, side):
    """The smallest square side above `side` at which `model` trains on one image, searched up to twice
    `side` (one image's forward pass each, at most about log2(side) of them); None when not even that
    does (a map pooled to 1 x 1 at any size, say)."""
    low, high = side, min(2 * side, MAX_SIZE)  # fails at low; search (low, high]
    if high <= low or not trains_on_one_image(model, (high, high)):
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if trains_on_one_image(model, (middle, middle)) else (middle, high)
    return high


def check_batchnorm(model, batch_size, size, processes=1):
    """Raise SettingError, in one line, when `model` cannot train on batches of `batch_size` images (one
    process's share, of `processes`) at `size` (an int or (H, W)): a BatchNorm layer would get one value per
    channel. Its fixes are both ways out: a larger batch_size, or the smallest square size that trains with a
    batch of 1.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if batch_size > 1 or trains_on_one_image(model, (h, w)):
        return  # any map holds at least 2 values per channel over 2 images
    from ..models.registry import model_spec  # the models' names

    try:
        name = model_spec(model)[0]
    except ValueError:  # a model of the user's own
        name = type(model).__name__
    side = smallest_side(model, max(h, w))
    share = f"batches of {processes} over {processes} processes (1 each)" if processes > 1 else "batches of 1"
    larger = [Fix(size=side, note="or more")] if side else []
    raise SettingError(
        f"{name} at size {h if h == w else f'{h}x{w}'} with {share} cannot train: its deepest map is 1 x 1, "
        f"and BatchNorm needs more than one value per channel", fix=[Fix(batch_size=2 * processes, note="or more")]
        + larger)
