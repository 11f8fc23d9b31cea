"""ResNet34UNet: a U-Net whose encoder is ResNet-34 (minunet.models.resnet), optionally ImageNet-pretrained.

The decoder is the standard one (as segmentation_models_pytorch's Unet("resnet34")): five blocks of widths
256, 128, 64, 32, 16, each up-sampling x2 (nearest), fusing the encoder's map at that scale, then a DoubleConv
(the U-Net's own block from minunet.models.blocks).
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, Fix
from .blocks import DoubleConv
from .resnet import IMAGENET_WEIGHTS_FILE, IMAGENET_WEIGHTS_URL, ResNet34Encoder


class DecoderBlock(nn.Module):
    """Up-sample (nearest) to the skip's size, concatenate the skip (if any), then DoubleConv."""

    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.conv = DoubleConv(in_channels + skip_channels, out_channels)

    def forward(self, x, size, skip=None):  # x: (B, C_in, h, w); size = (H, W), about (2h, 2w)
        # Up-sampling to an explicit size (not x2) keeps odd input sizes aligned with their skips.
        x = F.interpolate(x, size=size, mode="nearest")  # (B, C_in, H, W)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)  # (B, C_in + C_skip, H, W)
        return self.conv(x)  # (B, C_out, H, W)


# minunet 0.1.0 named each decoder block's two conv-BN-ReLU layers conv1 and conv2; their weights are the same
# tensors as DoubleConv's layers 0-1 and 3-4, so checkpoints written then are renamed as they load.
OLD_DECODER_NAMES = {"conv1.0.": "conv.double_conv.0.", "conv1.1.": "conv.double_conv.1.",
                     "conv2.0.": "conv.double_conv.3.", "conv2.1.": "conv.double_conv.4."}


def rename_old_decoder_keys(module, state_dict, prefix, *args):
    """load_state_dict pre-hook: rename minunet 0.1.0's decoder keys in place (see OLD_DECODER_NAMES)."""
    for key in [k for k in state_dict if k.startswith(prefix + "decoder.")]:
        block, _, rest = key[len(prefix + "decoder."):].partition(".")  # "0", "conv1.0.weight"
        for old, new in OLD_DECODER_NAMES.items():
            if rest.startswith(old):
                state_dict[f"{prefix}decoder.{block}.{new}{rest[len(old):]}"] = state_dict.pop(key)


class WeightsNotDownloaded(CheckpointError, RuntimeError):
    """torchvision's ImageNet weights could not be downloaded (offline): a CheckpointError that names the ways
    out, and a RuntimeError, what ResNet34UNet(encoder_weights="imagenet") raises offline."""


def imagenet_state_dict():
    """torchvision's ImageNet ResNet-34 state dict, downloaded once to the torch hub cache.

    Offline (and not cached yet) this raises WeightsNotDownloaded saying how to get the file and pass its path.
    """
    from torchvision.models import ResNet34_Weights

    try:
        return ResNet34_Weights.IMAGENET1K_V1.get_state_dict(progress=False, weights_only=True)  # no code runs
    except Exception as err:  # URLError, ssl, HTTP errors, a truncated download: all mean "could not fetch"
        cache = os.path.join(torch.hub.get_dir(), "checkpoints", IMAGENET_WEIGHTS_FILE)
        raise WeightsNotDownloaded(
            f"could not download torchvision's ImageNet ResNet-34 weights ({type(err).__name__})",
            otherwise=f"fetch {IMAGENET_WEIGHTS_URL} on a machine with network, then put it at {cache}",
            fix=[Fix(encoder_weights="PATH", note="of that file"), Fix(encoder_weights=None)]) from None


class ResNet34UNet(nn.Module):
    """U-Net with a ResNet-34 encoder; returns logits at the input's height and width (any H, W >= 32).

    encoder_weights: None (random init), "imagenet" (torchvision's IMAGENET1K_V1, downloaded once),
    or the path of a file holding that state dict (resnet34-b627a593.pth). in_channels: 3 (RGB) or 1 (gray: the
    first convolution's ImageNet weights summed over colour, minunet.models.resnet).
    24,436,369 parameters for out_channels=1, the same network as segmentation_models_pytorch's
    Unet("resnet34", classes=1).
    """

    decoder_channels = (256, 128, 64, 32, 16)

    def __init__(self, out_channels=1, encoder_weights=None, in_channels=3):
        super().__init__()
        self.out_channels, self.in_channels = out_channels, in_channels
        self.encoder = ResNet34Encoder(in_channels)
        if encoder_weights == "imagenet":
            self.encoder.load_torchvision_state_dict(imagenet_state_dict())
        elif encoder_weights is not None:
            self.encoder.load_torchvision_state_dict(torch.load(encoder_weights, map_location="cpu",
                                                                weights_only=True))
        skips = ResNet34Encoder.channels[3::-1] + (0,)  # (256, 128, 64, 64, 0): none at full resolution
        ins = (512,) + self.decoder_channels[:-1]  # (512, 256, 128, 64, 32)
        self.decoder = nn.ModuleList(
            DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, self.decoder_channels))
        self.head = nn.Conv2d(self.decoder_channels[-1], out_channels, kernel_size=3, padding=1)
        self._register_load_state_dict_pre_hook(rename_old_decoder_keys, with_module=True)  # (module, sd, prefix, ...)

    def config(self):
        """The constructor arguments that rebuild this architecture (the weights come from a state dict)."""
        return dict(out_channels=self.out_channels, in_channels=self.in_channels)

    def forward(self, x):  # (B, in_channels, H, W)
        f1, f2, f3, f4, f5 = self.encoder(x)  # 1/2 (64), 1/4 (64), 1/8 (128), 1/16 (256), 1/32 (512)
        d = self.decoder[0](f5, f4.shape[2:], f4)  # (B, 256, H/16, W/16)
        d = self.decoder[1](d, f3.shape[2:], f3)  # (B, 128, H/8, W/8)
        d = self.decoder[2](d, f2.shape[2:], f2)  # (B, 64, H/4, W/4)
        d = self.decoder[3](d, f1.shape[2:], f1)  # (B, 32, H/2, W/2)
        d = self.decoder[4](d, x.shape[2:])  # (B, 16, H, W)
        return self.head(d)  # (B, out, H, W) logits
