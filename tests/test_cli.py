"""The main job end to end through the command line: train, evaluate, predict; and exact repeatability."""
import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from minunet.cli import main
from minunet.checkpoint import load_checkpoint
from minunet.cli.rundir import HISTORY_COLUMNS

TINY = ["--data", "synthetic", "--model", "unet", "--base-channels", "4", "--size", "32", "--limit", "24",
        "--batch-size", "8", "--device", "cpu"]
SAMPLES = os.path.join(os.path.dirname(__file__), "..", "docs", "samples")


def train(out, *extra):
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out), *extra]) == 0


@pytest.mark.slow
def test_help_lists_the_subcommands():
    for cmd in (["minunet", "--help"], [sys.executable, "-m", "minunet", "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0
        assert all(name in result.stdout for name in ("train", "evaluate", "predict"))


@pytest.mark.slow
def test_train_evaluate_predict_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    train(run)
    printed = capsys.readouterr().out
    assert "epoch 1/2" in printed and "val Dice" in printed and "best validation Dice" in printed
    for name in ("best.pt", "last.pt", "history.csv", "curves.png"):
        assert (run / name).stat().st_size > 0, name
    assert Image.open(run / "curves.png").format == "PNG"
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert set(HISTORY_COLUMNS) <= set(rows[0])
    assert all(0 <= float(r["val_dice"]) <= 1 and float(r["train_images_per_s"]) > 0 for r in rows)

    best = load_checkpoint(str(run / "best.pt"))
    assert best.model == "unet" and best.model_args["base_channels"] == 4 and best.size == (32, 32)
    assert best.best_dice == max(float(r["val_dice"]) for r in rows)

    # evaluate: the metrics printed, the same in the JSON, and the figure drawn
    metrics, figure = tmp_path / "metrics.json", tmp_path / "cases.png"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", "synthetic", "--split", "val",
                 "--limit", "24", "--json", str(metrics), "--figure", str(figure),
                 "--precision", best.run["ran_in"]]) == 0  # validation's precision (evaluate's default: fp32)
    printed = capsys.readouterr().out
    scores = json.loads(metrics.read_text())
    assert scores["count"] == 24
    for name in ("dice", "jaccard", "threshold_jaccard", "accuracy", "sensitivity", "specificity"):
        assert f"{scores[name]:.4f}" in printed
    assert abs(scores["dice"] - best.best_dice) < 1e-6  # evaluate scores as validation did
    assert Image.open(figure).format == "PNG"

    # predict: one 0/255 mask per image, at the image's own size, plus overlays
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input", SAMPLES, "--output", str(out),
                 "--overlay", "--batch-size", "2"]) == 0
    samples = sorted(f for f in os.listdir(SAMPLES) if f.endswith(".png"))
    assert len(samples) == 3
    for name in samples:
        stem = name[:-4]
        source = Image.open(os.path.join(SAMPLES, name))
        mask = Image.open(out / f"{stem}_Segmentation.png")
        assert mask.mode == "L" and mask.size == source.size
        assert set(mask.tobytes()) <= {0, 255}
        assert Image.open(out / f"{stem}_overlay.png").size == source.size


@pytest.mark.slow
def test_a_seeded_cpu_run_repeats_to_the_last_digit(tmp_path):
    train(tmp_path / "a", "--seed", "3")
    train(tmp_path / "b", "--seed", "3")
    a, b = load_checkpoint(str(tmp_path / "a" / "last.pt")), load_checkpoint(str(tmp_path / "b" / "last.pt"))
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    timing = {"train_seconds", "train_images_per_s", "val_seconds", "elapsed_seconds"}
    strip = [{k: v for k, v in row.items() if k not in timing} for row in a.history]
    assert strip == [{k: v for k, v in row.items() if k not in timing} for row in b.history]
    # and another seed gives another run
    train(tmp_path / "c", "--seed", "4")
    c = load_checkpoint(str(tmp_path / "c" / "last.pt"))
    assert not torch.equal(a.state_dict["outc.conv.weight"], c.state_dict["outc.conv.weight"])


@pytest.mark.parametrize("command", [["train"], ["evaluate", "--checkpoint", "c.pt", "--data", "synthetic"],
                                     ["predict", "--checkpoint", "c.pt", "--input", "in", "--output", "out"]])
def test_flip_tta_is_on_unless_no_tta(command):
    from minunet.cli.parser import build_parser
    from minunet.cli.flags import recipe_of

    parser = build_parser()
    tta = (lambda argv: recipe_of(parser.parse_args(argv)).tta) if command == ["train"] else \
        (lambda argv: parser.parse_args(argv).tta)  # train: through the recipe its flags build
    assert tta(command) and tta([*command, "--tta"])
    assert not tta([*command, "--no-tta"])


def test_train_defaults_to_the_cross_validated_loss():
    from minunet.cli.parser import build_parser
    from minunet.losses import LOSSES, BCEJaccardLoss
    from minunet.cli.flags import recipe_of
    from minunet.recipe import Recipe

    assert recipe_of(build_parser().parse_args(["train"])).loss == Recipe().loss == "bce_jaccard"
    assert LOSSES[Recipe().loss] is BCEJaccardLoss


def test_train_defaults_to_the_cross_validated_unet_width():
    from minunet.cli.parser import build_parser
    from minunet.models import new_model
    from minunet.cli.flags import recipe_of

    recipe = recipe_of(build_parser().parse_args(["train", "--model", "unet"]))
    assert recipe.base_channels == 16  # as accurate as 32 over 749 held-out images, in under half the time
    assert new_model(recipe).config()["base_channels"] == 16


@pytest.mark.slow
@pytest.mark.parametrize("argv, words", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--model", "vgg"], "--model"),
    (["train", "--precision", "fp8"], "--precision"),
    (["evaluate", "--data", "synthetic"], "--checkpoint"),
    (["predict", "--checkpoint", "x.pt"], "--input"),
])
def test_bad_flags_give_one_line_and_exit_2(argv, words):
    result = subprocess.run([sys.executable, "-m", "minunet", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_inputs_give_one_line_and_exit_2(tmp_path):
    cases = [
        ["train", "--data", "isic2016", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")],
        ["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data", "synthetic"],
        ["predict", "--checkpoint", str(tmp_path / "missing.pt"), "--input", SAMPLES, "--output", str(tmp_path)],
        ["train", "--model", "resunet34", "--encoder-weights", str(tmp_path / "no.pth"), "--out", str(tmp_path / "r")],
    ]
    for argv in cases:
        result = subprocess.run([sys.executable, "-m", "minunet", *argv], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2, argv
        assert len(result.stderr.strip().splitlines()) == 1 and "error" in result.stderr, result.stderr
        assert not (tmp_path / "r").exists()


class Brightness(torch.nn.Module):
    """A per-pixel 'model': logit = 100 x (sum of the normalised channels), so bright pixels are lesion."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(100.0)
            self.conv.bias.zero_()

    def forward(self, x):  # (B, 3, H, W) -> (B, 1, H, W)
        return self.conv(x)


@pytest.mark.parametrize("batch_size, compile", [(1, False), (2, False), (16, False),
                                                 pytest.param(2, True, marks=pytest.mark.slow)])
def test_predict_in_batches_gives_each_image_its_own_mask(tmp_path, batch_size, compile):
    from minunet.device import Runtime
    from minunet.inference import Inference
    from minunet.cli.predict import predict
    from minunet.transforms import tensor_to_pil

    # three images of different sizes and contents: white, black, white on the left half only
    white, black = torch.full((3, 30, 40), 255, dtype=torch.uint8), torch.zeros(3, 50, 20, dtype=torch.uint8)
    half = torch.zeros(3, 24, 64, dtype=torch.uint8)
    half[:, :, :32] = 255
    images = {"a_white": white, "b_black": black, "c_half": half}
    paths = []
    for stem, image in images.items():
        paths.append(str(tmp_path / f"{stem}.png"))
        tensor_to_pil(image).save(paths[-1])
    result = predict(Brightness(), paths, str(tmp_path / "out"), Inference(size=32),
                     Runtime("cpu", batch_size=batch_size, compile=compile))
    assert (result["written"], result["skipped"]) == (3, [])
    masks = {stem: Image.open(tmp_path / "out" / f"{stem}_Segmentation.png") for stem in images}
    assert [m.size for m in masks.values()] == [(40, 30), (20, 50), (64, 24)]  # each at its own size
    assert set(masks["a_white"].tobytes()) == {255} and set(masks["b_black"].tobytes()) == {0}
    rows = masks["c_half"].tobytes()
    assert all(rows[64 * y + x] == 255 for y in range(24) for x in range(28))  # left: lesion
    assert all(rows[64 * y + x] == 0 for y in range(24) for x in range(36, 64))  # right: skin


def test_version_prints_the_version_and_exits_0(capsys):
    # issue 34, case 22: it said "the following arguments are required: command"
    import minunet
    from minunet.cli.parser import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"minunet {minunet.__version__}"
