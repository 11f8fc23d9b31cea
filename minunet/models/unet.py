"""UNet: the U-Net of Ronneberger et al. (2015), with BatchNorm and 'same' padding."""
import torch.nn as nn

from .blocks import DoubleConv, Down, OutConv, Up


class UNet(nn.Module):
    """U-Net returning logits at the input's height and width (any H, W >= 32).

    Widths are base_channels * (1, 2, 4, 8, 16): with the default 64 that is the classic
    64-128-256-512-1024 network, 31,037,633 parameters for 3 input channels and 1 output.
    """

    def __init__(self, in_channels=3, out_channels=1, base_channels=64, bilinear=False):
        super().__init__()
        self.in_channels, self.out_channels, self.base_channels = in_channels, out_channels, base_channels
        self.bilinear = bilinear
        c = base_channels
        # Bilinear up-sampling does not halve the channels, so the bottom DoubleConv does it instead.
        factor = 2 if bilinear else 1
        self.inc = DoubleConv(in_channels, c)
        self.down1 = Down(c, 2 * c)
        self.down2 = Down(2 * c, 4 * c)
        self.down3 = Down(4 * c, 8 * c)
        self.down4 = Down(8 * c, 16 * c // factor)
        self.up1 = Up(16 * c, 8 * c // factor, bilinear)
        self.up2 = Up(8 * c, 4 * c // factor, bilinear)
        self.up3 = Up(4 * c, 2 * c // factor, bilinear)
        self.up4 = Up(2 * c, c, bilinear)
        self.outc = OutConv(c, out_channels)

    def config(self):
        """The constructor arguments that rebuild this architecture (the weights come from a state dict)."""
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    base_channels=self.base_channels, bilinear=self.bilinear)

    def forward(self, x):  # (B, in, H, W); c = base_channels
        x1 = self.inc(x)  # (B, c, H, W)
        x2 = self.down1(x1)  # (B, 2c, H/2, W/2)
        x3 = self.down2(x2)  # (B, 4c, H/4, W/4)
        x4 = self.down3(x3)  # (B, 8c, H/8, W/8)
        x5 = self.down4(x4)  # (B, 16c, H/16, W/16)
        x = self.up1(x5, x4)  # (B, 8c, H/8, W/8)
        x = self.up2(x, x3)  # (B, 4c, H/4, W/4)
        x = self.up3(x, x2)  # (B, 2c, H/2, W/2)
        x = self.up4(x, x1)  # (B, c, H, W)
        return self.outc(x)  # (B, out, H, W) logits
