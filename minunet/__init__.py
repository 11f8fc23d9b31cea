"""minunet: a small, readable PyTorch library that teaches skin-lesion segmentation by building it."""
from .blocks import DoubleConv, Down, OutConv, Up
from .resnet import BasicBlock, ResNet34Encoder
from .resunet import ResNet34UNet
from .unet import UNet

__version__ = "0.1.0"
