"""Shapes, parameter counts and equivalence with reference implementations for every minunet model."""
import pytest
import torch
import torchvision

from minunet import BasicBlock, DoubleConv, Down, OutConv, ResNet34Encoder, ResNet34UNet, UNet, Up

SIZES = [(32, 32), (100, 75), (128, 128), (257, 190)]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- blocks
@pytest.mark.parametrize("batch", [1, 4])
def test_block_shapes(batch):
    x = torch.randn(batch, 8, 33, 20)
    assert DoubleConv(8, 16)(x).shape == (batch, 16, 33, 20)
    assert Down(8, 16)(x).shape == (batch, 16, 16, 10)
    assert OutConv(8, 2)(x).shape == (batch, 2, 33, 20)
    low, skip = torch.randn(batch, 32, 16, 10), torch.randn(batch, 16, 33, 20)
    assert Up(32, 8)(low, skip).shape == (batch, 8, 33, 20)  # padded back to the odd skip size
    # Bilinear keeps the channels, so its input carries half of in_channels, the skip the other half.
    assert Up(32, 8, bilinear=True)(low[:, :16], skip).shape == (batch, 8, 33, 20)


def test_basic_block_shapes():
    x = torch.randn(2, 64, 17, 9)
    assert BasicBlock(64, 64)(x).shape == (2, 64, 17, 9)
    block = BasicBlock(64, 128, stride=2)
    assert block.downsample is not None
    assert block(x).shape == (2, 128, 9, 5)


# ---------------------------------------------------------------- UNet
def test_unet_parameter_count_is_the_classic_unet():
    assert n_params(UNet()) == 31_037_633


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("size", SIZES)
def test_unet_output_matches_input_size(size, batch):
    model = UNet(base_channels=8).eval()
    with torch.no_grad():
        out = model(torch.randn(batch, 3, *size))
    assert out.shape == (batch, 1, *size)


def test_unet_default_width_and_options():
    with torch.no_grad():
        assert UNet().eval()(torch.randn(1, 3, 64, 48)).shape == (1, 1, 64, 48)
        assert UNet(in_channels=1, out_channels=3, base_channels=4, bilinear=True).eval()(
            torch.randn(2, 1, 45, 37)).shape == (2, 3, 45, 37)


def every_parameter_gets_a_gradient(model, x):
    model.train()
    model(x).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reached {missing}"


def test_unet_backward_reaches_every_parameter():
    torch.manual_seed(0)
    every_parameter_gets_a_gradient(UNet(base_channels=8), torch.randn(2, 3, 64, 48))


def test_unet_is_deterministic_in_eval_mode():
    torch.manual_seed(0)
    model = UNet(base_channels=8).eval()
    x = torch.randn(2, 3, 100, 75)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


# ---------------------------------------------------------------- ResNet-34 encoder
def random_torchvision_resnet34(seed=0):
    """torchvision's resnet34 with random weights AND random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    ref = torchvision.models.resnet34()
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return ref.eval()


def torchvision_features(ref, x):
    f1 = ref.relu(ref.bn1(ref.conv1(x)))
    f2 = ref.layer1(ref.maxpool(f1))
    f3 = ref.layer2(f2)
    f4 = ref.layer3(f3)
    return [f1, f2, f3, f4, ref.layer4(f4)]


def test_encoder_names_match_torchvision():
    ours = ResNet34Encoder().state_dict()
    theirs = {k: v for k, v in torchvision.models.resnet34().state_dict().items() if not k.startswith("fc.")}
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize("size", [(224, 224), (161, 97)])
def test_encoder_features_equal_torchvision(size):
    ref = random_torchvision_resnet34()
    enc = ResNet34Encoder().eval()
    enc.load_torchvision_state_dict(ref.state_dict())
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours, theirs = enc(x), torchvision_features(ref, x)
    expected_channels = [64, 64, 128, 256, 512]
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape and a.shape[1] == expected_channels[i]
        assert (a - b).abs().max() < 1e-5, f"feature map {i} differs"


def test_encoder_feature_scales():
    with torch.no_grad():
        feats = ResNet34Encoder().eval()(torch.randn(1, 3, 128, 64))
    assert [tuple(f.shape[2:]) for f in feats] == [(64, 32), (32, 16), (16, 8), (8, 4), (4, 2)]


def test_encoder_loading_names_bad_keys():
    sd = torchvision.models.resnet34().state_dict()
    enc = ResNet34Encoder()
    broken = dict(sd)
    del broken["layer2.0.downsample.0.weight"]
    broken["layer5.0.conv1.weight"] = torch.zeros(1)
    broken["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(ValueError) as err:
        enc.load_torchvision_state_dict(broken)
    msg = str(err.value)
    assert "layer2.0.downsample.0.weight" in msg and "layer5.0.conv1.weight" in msg and "conv1.weight" in msg
    with pytest.raises(ValueError, match=r"bn1.running_mean str \(expected \(64,\)\)"):
        enc.load_torchvision_state_dict(dict(sd, **{"bn1.running_mean": "not a tensor"}))
    with pytest.raises(ValueError, match="a list, not a dict"):
        enc.load_torchvision_state_dict(list(sd.values()))
    with pytest.raises(ValueError, match="keys are not all parameter names"):
        enc.load_torchvision_state_dict(dict(enumerate(sd.values())))
    enc.load_torchvision_state_dict(sd)  # fc.* is ignored, everything else fits


# ---------------------------------------------------------------- ResNet-34 U-Net
def test_resunet_parameter_count():
    assert n_params(ResNet34UNet()) == 24_436_369


@pytest.mark.parametrize("size", SIZES)
def test_resunet_output_matches_input_size(size):
    model = ResNet34UNet().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 1, *size)


def test_resunet_backward_reaches_every_parameter():
    torch.manual_seed(0)
    every_parameter_gets_a_gradient(ResNet34UNet(), torch.randn(2, 3, 64, 64))


def test_resunet_equals_segmentation_models_pytorch():
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    ref = smp.Unet("resnet34", encoder_weights=None, classes=1).eval()
    ours = ResNet34UNet().eval()
    # Same layers in the same order: copy the reference's tensors across by position.
    pairs = list(zip(ours.state_dict().items(), ref.state_dict().values()))
    assert len(pairs) == len(ref.state_dict()) == len(ours.state_dict())
    assert all(a.shape == b.shape for (_, a), b in pairs)
    ours.load_state_dict({name: b for (name, _), b in pairs})
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() < 1e-5


def test_resunet_loads_encoder_weights_from_a_file(tmp_path):
    ref = random_torchvision_resnet34(seed=1)
    path = tmp_path / "resnet34-b627a593.pth"
    torch.save(ref.state_dict(), path)
    model = ResNet34UNet(encoder_weights=str(path))
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, ref.state_dict()[name]), name


def test_imagenet_weights_offline_fail_with_a_clear_message(monkeypatch, tmp_path):
    import urllib.request
    from urllib.error import URLError

    def no_network(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(RuntimeError) as err:
        ResNet34UNet(encoder_weights="imagenet")
    msg = str(err.value)
    assert "resnet34-b627a593.pth" in msg and msg.endswith("pass encoder_weights=PATH of that file, or leave "
                                                           "encoder_weights out")


# ---------------------------------------------------------------- inference form
@pytest.mark.parametrize("make", [lambda: UNet(base_channels=8), ResNet34UNet])
def test_folding_batchnorm_keeps_the_outputs(make):
    from minunet.inference import prepare_for_inference

    torch.manual_seed(0)
    model = make()
    model.train()
    with torch.no_grad():  # a few forward passes give the BatchNorm layers non-trivial running statistics
        for _ in range(3):
            model(torch.randn(4, 3, 64, 64) * 2 + 1)
    model.eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        expected = model(x)
        fast = prepare_for_inference(model, torch.device("cpu"))
        got = fast(x.contiguous(memory_format=torch.channels_last))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the caller's model is untouched
    assert (got - expected).abs().max() < 1e-4 * expected.abs().max()
