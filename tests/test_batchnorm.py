"""Issue 23, case 3: a batch of 1 where a model's deepest map is 1 x 1 (resunet34 at --size 32) is refused in one
line before training, naming the batch and the sizes that work; every other batch of 1 trains."""
import pytest
import torch

from minunet import ResNet34UNet, UNet
from minunet.training.batchnorm import check_batchnorm, smallest_batchnorm_map
from minunet.cli import main
from minunet.errors import SettingError
from test_robustness import one_error_line

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def resunet():
    torch.manual_seed(0)
    return ResNet34UNet()


def trains_in_torch(model, batch, size):
    """Whether torch itself runs a training-mode forward of `batch` images of `size` (the reference)."""
    model.train()
    try:
        with torch.no_grad():
            model(torch.randn(batch, 3, *size))
        return True
    except ValueError as err:
        assert "Expected more than 1 value per channel when training" in str(err)
        return False


@pytest.mark.parametrize("batch,size", [(1, (32, 32)), (2, (32, 32)), (1, (33, 33)), (1, (32, 40)), (1, (64, 64))])
def test_the_check_agrees_with_torch_for_resunet34(resunet, batch, size):
    state = {k: v.clone() for k, v in resunet.state_dict().items()}
    try:
        check_batchnorm(resunet, batch, size)
        refused = False
    except SettingError:
        refused = True
    assert refused == (not trains_in_torch(resunet, batch, size)), (batch, size)
    assert refused == ((batch, size) == (1, (32, 32)))  # only the 1 x 1 map in a batch of 1
    resunet.load_state_dict(state)  # the reference's training forward moved the BatchNorm statistics


def test_the_refusal_names_the_batch_and_the_smallest_size(resunet):
    with pytest.raises(SettingError) as e:
        check_batchnorm(resunet, 1, 32)
    assert str(e.value) == ("resunet34 at size 32 with batches of 1 cannot train: its deepest map is 1 x 1, and "
                            "BatchNorm needs more than one value per channel: pass batch_size=2 or more, or "
                            "size=33 or more")
    with pytest.raises(SettingError) as e:  # torchrun: a batch of 2 over 2 processes
        check_batchnorm(resunet, 1, 32, processes=2)
    assert "with batches of 2 over 2 processes (1 each)" in str(e.value)
    assert "pass batch_size=4 or more, or size=33 or more" in str(e.value)


def test_the_probe_leaves_the_model_as_it_was(resunet):
    resunet.train()
    before = {k: v.clone() for k, v in resunet.state_dict().items()}
    assert smallest_batchnorm_map(resunet, (32, 32)) == (1, 1)
    assert smallest_batchnorm_map(resunet, (33, 64)) == (2, 2)
    assert resunet.training
    assert all(torch.equal(before[k], v) for k, v in resunet.state_dict().items())
    assert smallest_batchnorm_map(torch.nn.Conv2d(3, 1, 3), (32, 32)) is None  # no BatchNorm: nothing to check


@pytest.mark.parametrize("size", [32, (32, 48), 33])
def test_the_unet_trains_on_one_image_at_any_size(size):
    unet = UNet(base_channels=4)
    assert smallest_batchnorm_map(unet, size if isinstance(size, tuple) else (size, size))[0] >= 2  # 1/16: 2 x 2
    check_batchnorm(unet, 1, size)
    assert trains_in_torch(unet, 1, size if isinstance(size, tuple) else (size, size))


@pytest.mark.slow  # two tiny trainings
def test_train_refuses_before_writing_anything_and_the_unet_trains(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--data", "synthetic", "--size", "32", "--batch-size", "1", "--limit", "4", "--epochs", "1",
             "--device", "cpu", "--precision", "fp32"]
    assert main(["train", "--model", "resunet34", "--encoder-weights", "none", *flags, "--out", str(out)]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        "minunet train: error: resunet34 at size 32 with batches of 1 cannot train: its deepest map is 1 x 1, "
        "and BatchNorm needs more than one value per channel: pass --batch-size 2 or more, or --size 33 or more")
    assert not out.exists() or not any(out.iterdir())
    assert main(["train", "--model", "unet", "--base-channels", "4", *flags, "--out", str(out)]) == 0
    assert (out / "best.pt").exists()


def test_a_model_of_ones_own_is_named_by_its_class():
    pooled = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.BatchNorm2d(4))  # (B, 4, 1, 1) at any size
    with pytest.raises(SettingError, match=r"^Sequential at size 40x32 with batches of 1 cannot train: .*: pass "
                                           r"batch_size=2 or more$"):  # no size helps: none named
        check_batchnorm(pooled, 1, (40, 32))
