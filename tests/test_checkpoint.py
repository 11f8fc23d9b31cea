"""minunet.checkpoint.Checkpoint: one type knows the file's keys; it writes FORMAT, reads every earlier format
(0.1.0's fixture, the later format-1 files) in one form, and records what ran: the loss actually used, a threshold
only for two classes, the size as (H, W), unnamed classes spelt as the data name them."""
import pathlib

import pytest
import torch

from minunet import UNet
from minunet.checkpoint import FORMAT, Checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from minunet.cli.modelcard import model_card
from minunet.data.catalog import numbered
from minunet.errors import CheckpointError
from minunet.transforms import IMAGENET_MEAN, IMAGENET_STD

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "unet_v0.1.0.pt"


def test_a_checkpoint_round_trips_in_one_form(tmp_path):
    model = UNet(base_channels=2)
    save_checkpoint(str(tmp_path / "m.pt"), model, size=(32, 48), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    threshold=0.3, loss="bce_jaccard", run=dict(size=(32, 48), epochs=2, loss="bce_jaccard"),
                    epoch=2, best_dice=0.5, history=[{"epoch": 1}, {"epoch": 2}],
                    training_state=dict(optimizer={"state": {}}, rng_state=torch.get_rng_state()))
    back = load_checkpoint(str(tmp_path / "m.pt"))
    assert back.format == FORMAT and back.model == "unet" and back.model_args == model.config()
    assert back.size == (32, 48) and back.run["size"] == (32, 48) and back.mean == IMAGENET_MEAN
    assert back.classes == ("background", "lesion") and back.channels == 3 and back.threshold == 0.3
    assert back.loss == "bce_jaccard" and back.epoch == 2 and back.history[-1] == {"epoch": 2}
    assert set(back.training_state) == {"optimizer", "rng_state"}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in back.state_dict.items())
    # on disk: plain data, the size one list, and the keys 0.1.0's reader looked for at the top
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["format"] == FORMAT and state["size"] == [32, 48] and state["run"]["size"] == [32, 48]
    assert {"model", "model_args", "state_dict", "mean", "std", "epoch", "best_dice", "optimizer"} <= set(state)


def test_the_0_1_0_checkpoint_reads_in_todays_form():
    old = load_checkpoint(str(FIXTURE))
    assert old.format == 1 and old.size == (32, 32) and old.run["size"] == (32, 32)  # 0.1.0 wrote one side: 32
    assert old.classes == ("background", "lesion") and old.channels == 3
    assert old.threshold is None and old.loss is None  # not recorded: minunet uses 0.5; 0.1.0 named no loss
    assert old.epoch == 3 and old.history is None and old.training_state is None
    assert model_from_checkpoint(old).config()["base_channels"] == 1


def format_1_file(path, k, **more):
    """A checkpoint as minunet wrote it before the format was versioned (0.2.0.dev0): no format, the size as one
    side or a list at the top and a tuple in the run, a threshold whatever the classes, the recipe's loss name."""
    model = UNet(out_channels=1 if k == 2 else k, base_channels=2)
    run = dict(model="unet", size=(32, 48), epochs=2, loss="bce_jaccard", tune_threshold=True, data="synthetic",
               data_root=None, limit=8, precision="auto", ran_in="fp32")
    torch.save(dict(model="unet", model_args=model.config(), state_dict=model.state_dict(), run=run, size=[32, 48],
                    mean=IMAGENET_MEAN, std=IMAGENET_STD, channels=3, epoch=1, best_dice=0.4, threshold=0.35,
                    **more), path)
    return path


def test_an_earlier_format_reads_as_what_ran(tmp_path):
    binary = load_checkpoint(str(format_1_file(tmp_path / "two.pt", 2, classes=["background", "lesion"])))
    assert binary.size == (32, 48) and binary.run["size"] == (32, 48)
    assert binary.threshold == 0.35 and binary.loss == "bce_jaccard"
    three = load_checkpoint(str(format_1_file(tmp_path / "three.pt", 3, classes=["background", "a", "b"])))
    assert three.classes == ("background", "a", "b")
    assert three.threshold is None  # its 0.35 decided nothing: each pixel takes its most probable class
    assert three.loss == "ce_jaccard"  # what trained it, not the recipe's binary name
    unnamed = load_checkpoint(str(format_1_file(tmp_path / "unnamed.pt", 3)))
    assert unnamed.classes == numbered(3) == ("background", "class 1", "class 2")  # as the data name them


def test_a_newer_format_is_refused_in_one_line(tmp_path):
    state = torch.load(FIXTURE, weights_only=True)
    torch.save(dict(state, format=FORMAT + 1), tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=f"format {FORMAT + 1}, written by a newer minunet"):
        load_checkpoint(str(tmp_path / "future.pt"))


def test_a_three_class_run_records_the_loss_it_trained_and_no_threshold(tmp_path, capsys):
    from minunet.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic", "--classes", "3", "--limit", "8", "--size", "32", "--epochs", "1",
                 "--batch-size", "4", "--base-channels", "2", "--device", "cpu", "--precision", "fp32", "--out",
                 str(out)]) == 0
    capsys.readouterr()
    best = load_checkpoint(str(out / "best.pt"))
    assert best.loss == "ce_jaccard" and best.run["loss"] == "bce_jaccard"  # what ran; what the recipe said
    assert best.threshold is None and "threshold" not in torch.load(out / "best.pt", weights_only=True)
    card = model_card(best, model_from_checkpoint(best), str(out / "best.pt"))
    assert "- loss: ce_jaccard" in card and "- threshold:" not in card
    assert "- decision: each pixel takes the class of highest probability" in card


def test_the_card_of_several_classes_says_no_threshold_was_tuned(tmp_path):
    three = load_checkpoint(str(format_1_file(tmp_path / "three.pt", 3)))  # its run says tune_threshold=True
    card = model_card(three, model_from_checkpoint(three), str(tmp_path / "three.pt"))
    assert "- loss: ce_jaccard" in card and "- threshold:" not in card and "tuned" not in card
    assert "best epoch chosen on its val split" in card and "0 background, 1 class 1, 2 class 2" in card


def test_checkpoint_is_the_only_reader_of_the_files_keys():
    """No module but minunet/checkpoint.py indexes a checkpoint by its keys ("state_dict", "model_args", ...)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    keys = ('["model_args"]', '["state_dict"]', '["best_dice"]', '.get("threshold"', '.get("epoch"', '.get("best_dice"')
    readers = [str(path.relative_to(root)) for path in [*root.joinpath("minunet").rglob("*.py"), root / "hubconf.py"]
               if path.name != "checkpoint.py" and any(key in path.read_text(encoding="utf-8") for key in keys)]
    assert readers == [], readers
    assert Checkpoint.__doc__
