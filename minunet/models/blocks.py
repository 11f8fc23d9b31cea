"""The four building blocks of a U-Net: DoubleConv, Down, Up and OutConv.

Shapes in the comments use B for the batch, C for channels, H and W for height and width.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Module):
    """(3x3 convolution -> BatchNorm -> ReLU) twice; keeps the height and width."""

    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        mid_channels = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):  # (B, C_in, H, W)
        return self.double_conv(x)  # (B, C_out, H, W)


class Down(nn.Module):
    """Halve the height and width with a 2x2 max-pool, then DoubleConv."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x):  # (B, C_in, H, W)
        x = self.pool(x)  # (B, C_in, H//2, W//2)
        return self.conv(x)  # (B, C_out, H//2, W//2)


class Up(nn.Module):
    """Double the height and width, pad to the skip connection's size, concatenate it, then DoubleConv.

    The up-sampling is a learned 2x2 transposed convolution (halving the channels), or, with
    bilinear=True, a fixed bilinear interpolation (channels kept, so DoubleConv halves them instead).
    """

    def __init__(self, in_channels, out_channels, bilinear=False):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, mid_channels=in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x, skip):  # x: (B, C_in, h, w), skip: (B, C_in/2, H, W), H >= 2h, W >= 2w
        # (when bilinear, x and skip carry C_in/2 channels each)
        x = self.up(x)  # (B, C_in/2, 2h, 2w)
        # An odd H or W was floored by the max-pool on the way down: pad the difference back.
        dy = skip.shape[2] - x.shape[2]
        dx = skip.shape[3] - x.shape[3]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])  # (B, C_in/2, H, W)
        x = torch.cat([skip, x], dim=1)  # (B, C_in, H, W)
        return self.conv(x)  # (B, C_out, H, W)


class OutConv(nn.Module):
    """A 1x1 convolution: per-pixel features to per-pixel class logits."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x):  # (B, C_in, H, W)
        return self.conv(x)  # (B, C_out, H, W)
