"""The models: U-Net blocks, UNet, the ResNet-34 encoder and ResNet34UNet, and MODELS, the registry that the
command line and the checkpoints build them through. To add a model: its module here, one entry in MODELS."""
from .blocks import DoubleConv, Down, OutConv, Up
from .registry import MODELS, ModelEntry, build_model, model_spec, new_model
from .resnet import BasicBlock, ResNet34Encoder
from .resunet import DecoderBlock, ResNet34UNet
from .unet import UNet

__all__ = ["DoubleConv", "Down", "Up", "OutConv", "UNet", "BasicBlock", "ResNet34Encoder", "DecoderBlock",
           "ResNet34UNet", "MODELS", "ModelEntry", "new_model", "build_model", "model_spec"]
