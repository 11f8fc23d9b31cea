"""minunet.plots' drawing of a network from the model itself: the blocks in the order they ran, and the skip
connections found from which block made each tensor, not assumed."""
import torch

from minunet import ResNet34UNet, UNet
from minunet.plots import plot_blocks, record_blocks


class ZerosForSkips(UNet):
    """A UNet whose Up blocks get zeros in place of the encoder's features: no skip connection to find."""

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.up1(self.down4(x4), torch.zeros_like(x4))
        x = self.up2(x, torch.zeros_like(x3))
        x = self.up3(x, torch.zeros_like(x2))
        return self.outc(self.up4(x, torch.zeros_like(x1)))


def test_record_blocks_sees_each_child_once_in_order_and_removes_its_hooks():
    model = UNet(base_channels=4).eval()
    calls = record_blocks(model, torch.randn(1, 3, 32, 32))
    assert [name for name, *_ in calls] == ["inc", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4",
                                            "outc"]
    assert calls[4][1] == "Down" and tuple(calls[4][3].shape) == (1, 64, 2, 2)
    assert all(not module._forward_hooks for module in model.modules())


def test_plot_blocks_finds_the_unet_skips_and_none_where_they_are_cut(tmp_path):
    image = torch.randn(1, 3, 32, 32)
    _, arrows = plot_blocks(UNet(base_channels=4).eval(), image, tmp_path / "u.png", "UNet")
    assert {(a, b) for a, b, skip in arrows if skip} == {("inc", "up4"), ("down1", "up3"), ("down2", "up2"),
                                                        ("down3", "up1")}
    assert ("down4", "up1", False) in arrows and ("input", "inc", False) in arrows
    assert (tmp_path / "u.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, cut = plot_blocks(ZerosForSkips(base_channels=4).eval(), image, tmp_path / "cut.png", "no skips")
    assert not [arrow for arrow in cut if arrow[2]] and len(cut) == 10


def test_plot_blocks_draws_chosen_submodules_of_the_resnet34_unet(tmp_path):
    model = ResNet34UNet().eval()
    modules = dict(model.named_modules())
    names = ["encoder.conv1", "encoder.bn1", "encoder.relu", "encoder.maxpool", "encoder.layer1", "encoder.layer2",
             "encoder.layer3", "encoder.layer4", "decoder.0", "decoder.1", "decoder.2", "decoder.3", "decoder.4",
             "head"]
    calls, arrows = plot_blocks(model, torch.randn(1, 3, 64, 64), tmp_path / "r.png", "ResNet34UNet",
                                blocks=[(n, modules[n]) for n in names])
    assert [name for name, *_ in calls] == ["input"] + names
    # the in-place ReLU hands on bn1's tensor: the skip at 1/2 is found as coming from it
    skips = {(a, b) for a, b, skip in arrows if skip}
    assert skips == {("encoder.layer3", "decoder.0"), ("encoder.layer2", "decoder.1"),
                     ("encoder.layer1", "decoder.2"), ("encoder.relu", "decoder.3")}
