"""minunet: a small, readable PyTorch library that teaches skin-lesion segmentation by building it.

Layers and models come from the top level (`from minunet import UNet`); transforms, losses, metrics, data,
training and plots live in their modules (`minunet.transforms`, `minunet.losses`, ...).
"""
from . import entry

entry.quiet_start()  # in the `minunet` command: ctrl-C while torch is imported is one line, exit 130
from .blocks import DoubleConv, Down, OutConv, Up
from .resnet import BasicBlock, ResNet34Encoder
from .resunet import DecoderBlock, ResNet34UNet
from .unet import UNet

__version__ = "0.2.0.dev0"
