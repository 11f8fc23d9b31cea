"""The models minunet trains and saves, by name: the one registry that the command line, the checkpoints and
bench/ build models through.

An entry is the model's class and `make`, which builds the model a training recipe asks for (the recipe's
options that configure it: unet's width, resunet34's encoder weights) for data of a DataSpec (its channels in,
one logit out for two classes, one per class for more). A checkpoint stores the name and the
model's own `config()`, and `build_model(name, **config)` rebuilds it. To add a model: one entry in MODELS
(its class needs a `config()` returning its constructor arguments).
"""
import os
import pickle
from dataclasses import dataclass
from typing import Callable

import torch

from ..data.catalog import DataSpec
from ..errors import CheckpointError, Fix, one_line
from .resunet import ResNet34UNet, WeightsNotDownloaded
from .unet import UNet


def encoder_weights(value):
    """A recipe's encoder_weights as ResNet34UNet takes them: None for "none", else "imagenet" or a file's path."""
    return None if value == "none" else value


WEIGHT_CHOICES = [Fix(encoder_weights="PATH", note="of torchvision's resnet34-b627a593.pth"),
                  Fix(encoder_weights=["imagenet", "none"])]  # a recipe's encoder weights that work


def resnet34_unet(recipe, spec):
    """The ResNet-34 U-Net with the recipe's encoder weights for data of `spec`; a file that cannot be used is a
    CheckpointError."""
    value = recipe.encoder_weights
    if os.path.isdir(value):
        raise CheckpointError(f"the encoder weights {value} are a folder", fix=WEIGHT_CHOICES)
    if value not in ("imagenet", "none") and not os.path.isfile(value):
        raise CheckpointError(f"the encoder weights {value}: no such file", fix=WEIGHT_CHOICES)
    try:
        return ResNet34UNet(spec.outputs, encoder_weights(value), spec.channels)
    except WeightsNotDownloaded as err:  # offline: the recipe spells no weights "none"
        raise CheckpointError(f"cannot load the encoder weights: {err.message}", otherwise=err.otherwise,
                              fix=[Fix(encoder_weights="PATH", note="of that file"), Fix(encoder_weights="none")]) \
            from None
    except (RuntimeError, ValueError, OSError) as err:  # a file that is not the state dict
        raise CheckpointError(f"cannot load the encoder weights: {one_line(err)}") from None
    except (EOFError, pickle.UnpicklingError):  # empty, or pickled objects that torch.load(weights_only) refuses
        raise CheckpointError(f"cannot load the encoder weights from {value}: it is empty, or holds Python "
                              f"objects that could run code", fix=WEIGHT_CHOICES) from None


@dataclass(frozen=True)
class ModelEntry:
    """A model of the registry: its class, and how a recipe (minunet.recipe.Recipe) builds one for data of a
    DataSpec (minunet.data.catalog): make(recipe, spec)."""
    cls: type
    make: Callable


MODELS = {
    "unet": ModelEntry(UNet, lambda recipe, spec: UNet(spec.channels, spec.outputs, recipe.base_channels)),
    "resunet34": ModelEntry(ResNet34UNet, resnet34_unet),
}


def new_model(recipe, spec=DataSpec()):
    """The model `recipe` asks for, for data of `spec` (default: RGB, two classes), its initial weights drawn
    from the recipe's seed (so runs repeat)."""
    torch.manual_seed(recipe.seed)
    return MODELS[recipe.model].make(recipe, spec)


def build_model(name, **kwargs):
    """A model by its name in MODELS and its constructor arguments (a checkpoint's "model_args")."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(MODELS)}")
    return MODELS[name].cls(**kwargs)


def model_spec(model):
    """(name, constructor arguments) that rebuild `model`'s architecture; its weights come separately."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    for name, entry in MODELS.items():
        if type(model) is entry.cls:
            return name, model.config()
    raise ValueError(f"cannot checkpoint a {type(model).__name__}: add it to minunet.models.MODELS")
