"""minunet: a small, readable PyTorch library that teaches medical image segmentation by building it.

The teaching core, in the order a learner meets it:
  minunet.data          datasets: ISIC, MedSegBench's npz files, your own folders, synthetic lesions
  minunet.transforms    joint image/mask augmentations and normalisation
  minunet.models        the U-Net's blocks, UNet, the ResNet-34 encoder, ResNet34UNet, the registry
  minunet.losses        BCE, soft Dice and Jaccard (two classes), their softmax counterparts (K classes)
  minunet.metrics       the ISIC challenge's metrics, per image and per class
  minunet.recipe        Recipe: every choice that decides what a run learns
  minunet.training      the loop (fit, train_one_epoch), EMA, torchrun
  minunet.inference     from a model's output to masks; minunet.evaluation scores a model on a dataset
  minunet.checkpoint    saving and loading a trained model
The shell, minunet.cli, is the `minunet` command built on them; the core never imports it.

The layers come from the top level too (`from minunet import UNet`). Importing minunet changes nothing in the
process: the names below are imported when first used (so the `minunet` command can take over ctrl-C before
torch is imported).
"""
import importlib as _importlib
import typing as _typing

__version__ = "0.2.0.dev0"

# name -> the module that defines it
_LAYERS = {"DoubleConv": "models.blocks", "Down": "models.blocks", "Up": "models.blocks",
           "OutConv": "models.blocks", "UNet": "models.unet", "BasicBlock": "models.resnet",
           "ResNet34Encoder": "models.resnet", "DecoderBlock": "models.resunet", "ResNet34UNet": "models.resunet"}
__all__ = list(_LAYERS)

if _typing.TYPE_CHECKING:  # what editors and type checkers see; at run time each is imported on first use
    from .models import (BasicBlock, DecoderBlock, DoubleConv, Down, OutConv, ResNet34Encoder,  # noqa: F401
                         ResNet34UNet, UNet, Up)


def __getattr__(name):
    """`minunet.UNet` and the other layers, imported on first use (PEP 562)."""
    if name not in _LAYERS:
        raise AttributeError(f"module 'minunet' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"minunet.{_LAYERS[name]}"), name)
    globals()[name] = value  # the next look-up is an ordinary one
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
