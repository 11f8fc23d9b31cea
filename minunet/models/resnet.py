"""ResNet-34 written out by hand, as an encoder for a U-Net, with torchvision's weights loadable into it.

Parameter and buffer names equal torchvision.models.resnet34's (conv1, bn1, layer1.0.conv1, ...), so
torchvision's state dict (and its ImageNet weights) map onto this module one to one.
"""
import torch
import torch.nn as nn

# torchvision's ImageNet weights for ResNet-34; the file the download stores in the torch hub cache.
IMAGENET_WEIGHTS_FILE = "resnet34-b627a593.pth"
IMAGENET_WEIGHTS_URL = "https://download.pytorch.org/models/" + IMAGENET_WEIGHTS_FILE


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut: out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    The shortcut is the identity, or a strided 1x1 conv + BN (`downsample`) where the shape changes.
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):  # (B, C_in, H, W)
        shortcut = x if self.downsample is None else self.downsample(x)  # (B, C_out, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, C_out, H/s, W/s), s = stride
        out = self.bn2(self.conv2(out))  # (B, C_out, H/s, W/s)
        out += shortcut  # in place, as torchvision does: one (B, C_out, H/s, W/s) tensor less to allocate
        return self.relu(out)  # (B, C_out, H/s, W/s)


def make_layer(in_channels, out_channels, blocks, stride):
    """A ResNet stage: `blocks` BasicBlocks, the first one strided (and widened) where asked."""
    layers = [BasicBlock(in_channels, out_channels, stride)]
    layers += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet34Encoder(nn.Module):
    """ResNet-34 without its classifier; forward returns 5 feature maps for a U-Net's skip connections.

    For an input (B, 3, H, W) the maps are, with ceil-rounded sizes:
    relu(bn1(conv1(x))) (B, 64, H/2, W/2), layer1 (B, 64, H/4, W/4), layer2 (B, 128, H/8, W/8),
    layer3 (B, 256, H/16, W/16), layer4 (B, 512, H/32, W/32).
    Pretrained weights expect ImageNet-normalised input (minunet.transforms.Normalize's default).
    in_channels=1 (gray): torchvision's first convolution loads summed over its three colour channels, which
    on a gray image gives exactly what the RGB weights give on that image repeated three times.
    """

    channels = (64, 64, 128, 256, 512)

    def __init__(self, in_channels=3):
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_layer(64, 64, blocks=3, stride=1)
        self.layer2 = make_layer(64, 128, blocks=4, stride=2)
        self.layer3 = make_layer(128, 256, blocks=6, stride=2)
        self.layer4 = make_layer(256, 512, blocks=3, stride=2)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):  # (B, in_channels, H, W)
        f1 = self.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        f2 = self.layer1(self.maxpool(f1))  # (B, 64, H/4, W/4)
        f3 = self.layer2(f2)  # (B, 128, H/8, W/8)
        f4 = self.layer3(f3)  # (B, 256, H/16, W/16)
        f5 = self.layer4(f4)  # (B, 512, H/32, W/32)
        return [f1, f2, f3, f4, f5]

    def load_torchvision_state_dict(self, state_dict):
        """Load the state dict of torchvision.models.resnet34() (its fc.* keys are ignored).

        Raises ValueError naming every missing, unexpected or wrongly shaped key (a value that is not a tensor
        counts as wrongly shaped).
        """
        if not isinstance(state_dict, dict):
            raise ValueError(f"not a torchvision resnet34 state dict: a {type(state_dict).__name__}, not a dict")
        if not all(isinstance(key, str) for key in state_dict):
            raise ValueError("not a torchvision resnet34 state dict: its keys are not all parameter names")

        def shape(value):
            return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__

        own = self.state_dict()
        given = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        rgb = given.get("conv1.weight")
        if self.in_channels == 1 and isinstance(rgb, torch.Tensor) and rgb.dim() == 4 and rgb.shape[1] == 3:
            given["conv1.weight"] = rgb.sum(1, keepdim=True)  # (64, 3, 7, 7) -> (64, 1, 7, 7): gray = R = G = B
        missing = sorted(set(own) - set(given))
        unexpected = sorted(set(given) - set(own))
        wrong = sorted(f"{k} {shape(given[k])} (expected {shape(own[k])})"
                       for k in set(own) & set(given) if shape(given[k]) != shape(own[k]))
        problems = [f"{label}: {', '.join(keys)}" for label, keys in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)) if keys]
        if problems:
            raise ValueError("not a torchvision resnet34 state dict; " + "; ".join(problems))
        self.load_state_dict(given)
