"""One path from a model to a mask, one set of defaults (issue 22): the masks --figure draws, predict writes
and evaluate scores are the same masks; fit() with its defaults runs what `minunet train` runs; a model added to
the registry trains from the command line; the library's functions keep short signatures."""
import base64
import csv
import inspect
import io
import pathlib
import re

import pytest
import torch
from PIL import Image

from minunet import UNet
from minunet.checkpoint import load_checkpoint, save_checkpoint
from minunet.cli import main
from minunet.cli.rundir import RunFolder
from minunet.data import make_dataset
from minunet.device import Runtime
from minunet.inference import Inference, probabilities
from minunet.models import MODELS, ModelEntry
from minunet.recipe import Recipe
from minunet.transforms import IMAGENET_MEAN, IMAGENET_STD, tensor_to_pil
from minunet.training.loop import fit

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def own_test_folder(root, n=5, size=32):
    """A --data folder whose test split holds n noisy images of size x size with masks (images at the model's
    working size, so evaluate's, predict's and the figure's masks all have one size)."""
    g = torch.Generator().manual_seed(1)
    for sub in ("images", "masks", "test/images", "test/masks"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        image = (torch.rand(3, size, size, generator=g) * 255).to(torch.uint8)
        mask = torch.zeros(1, size, size, dtype=torch.uint8)
        mask[:, 8:20, 6 + i:22] = 255
        for split in ("", "test/"):
            tensor_to_pil(image).save(root / f"{split}images" / f"im{i}.png")
            tensor_to_pil(mask).save(root / f"{split}masks" / f"im{i}.png")


def decoded(src):
    """A PNG data URI's picture as a (H, W) bool mask (white is lesion)."""
    picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L")
    return torch.tensor(list(picture.tobytes())).view(picture.size[1], picture.size[0]) > 127


def test_figure_report_predict_and_evaluate_show_the_same_masks_with_tta_and_postprocessing(tmp_path, monkeypatch,
                                                                                        capsys):
    own_test_folder(tmp_path / "data")
    torch.manual_seed(0)
    model = UNet(base_channels=2).eval()  # random weights: speckled masks, which post-processing changes
    checkpoint = str(tmp_path / "model.pt")
    save_checkpoint(checkpoint, model, size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, threshold=0.5)
    dataset = make_dataset("folder", "test", str(tmp_path / "data"), 32)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])  # (5, 3, 32, 32)
    threshold = probabilities(model, images, tta=True).median().item()  # half the pixels: many regions
    plain, flags = Inference(threshold=threshold, tta=False), ["--tta", "--postprocess", "--threshold", f"{threshold}"]

    drawn = {}
    monkeypatch.setattr("minunet.plots.plot_cases", lambda images, masks, preds, path, titles: drawn.update(
        {title.split()[0]: pred for title, pred in zip(titles, preds)}))
    assert main(["evaluate", "--checkpoint", checkpoint, "--data", "folder", "--data-root", str(tmp_path / "data"),
                 "--split", "test", "--device", "cpu", "--figure", str(tmp_path / "cases.png"),
                 "--report", str(tmp_path / "rep"), *flags]) == 0
    assert main(["predict", "--checkpoint", checkpoint, "--input", str(tmp_path / "data" / "test" / "images"),
                 "--output", str(tmp_path / "pred"), "--device", "cpu", *flags]) == 0
    capsys.readouterr()

    written = {f"im{i}": torch.tensor(list(Image.open(tmp_path / "pred" / f"im{i}_Segmentation.png").tobytes()))
               .view(32, 32) > 127 for i in range(5)}
    page = (tmp_path / "rep" / "report.html").read_text()
    reported = {alt.split()[0]: decoded(src) for src, alt in re.findall(r'src="([^"]+)" alt="([^"]+) prediction"',
                                                                          page)}
    scores = {row["id"]: float(row["dice"]) for row in csv.DictReader(open(tmp_path / "rep" / "per_image.csv"))}
    assert len(drawn) == 5 and len(reported) == 5
    changed = 0
    for stem, mask in written.items():
        truth = torch.tensor(list(Image.open(tmp_path / "data" / "test" / "masks" / f"{stem}.png").tobytes())
                             ).view(32, 32) > 127
        assert torch.equal(drawn[stem].reshape(32, 32).bool(), mask), stem  # the figure draws predict's mask
        assert torch.equal(reported[stem], mask), stem  # so does the report
        dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
        assert scores[stem] == pytest.approx(dice.item(), abs=1e-6), stem  # and evaluate scored that mask
        x = images[int(stem[2:])][None]
        changed += not torch.equal(plain.masks(plain.probabilities(model, x))[0, 0], mask)
    assert changed >= 3  # TTA and post-processing changed the masks: the figure did not redraw plain ones


def history_numbers(history):
    return [(row["epoch"], row["train_loss"], row["val_loss"], row["val_dice"], row["val_jaccard"], row["lr"])
            for row in history]


def test_fit_with_its_defaults_runs_what_minunet_train_runs(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["train", "--data", "synthetic", "--limit", "8", "--size", "32", "--epochs", "2",
                 "--base-channels", "4", "--batch-size", "4", "--device", "cpu", "--precision", "fp32",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    from_cli = load_checkpoint(str(out / "last.pt")).history

    recipe = Recipe(epochs=2, batch_size=4)  # every other choice: the defaults
    train_set = make_dataset("synthetic", "train", size=32, augment=True, limit=8)
    val_set = make_dataset("synthetic", "val", size=32, limit=8)
    torch.manual_seed(0)
    history = fit(UNet(base_channels=4), train_set, val_set, recipe=recipe, runtime=Runtime("cpu", "fp32"), log=None)
    assert len(history) == 2 and history_numbers(history) == history_numbers(from_cli)


class Toy(torch.nn.Module):
    """A model minunet does not ship: two convolutions of `width` channels."""

    def __init__(self, width=4):
        super().__init__()
        self.width = width
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.BatchNorm2d(width),
                                        torch.nn.ReLU(), torch.nn.Conv2d(width, 1, 1))

    def config(self):
        return dict(width=self.width)

    def forward(self, x):  # (B, 3, H, W)
        return self.body(x)  # (B, 1, H, W)


def test_a_model_registered_once_trains_evaluates_and_predicts_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(MODELS, "toy", ModelEntry(Toy, lambda recipe, spec: Toy(width=recipe.base_channels)))
    out = tmp_path / "run"
    assert main(["train", "--model", "toy", "--base-channels", "3", "--data", "synthetic", "--limit", "8",
                 "--size", "32", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", str(out)]) == 0
    state = load_checkpoint(str(out / "best.pt"))
    assert state.model == "toy" and state.model_args == {"width": 3} and state.run["model"] == "toy"
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--limit", "4", "--device", "cpu"]) == 0
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--input", str(ROOT / "docs" / "samples"),
                 "--output", str(tmp_path / "masks"), "--device", "cpu"]) == 0
    assert "wrote 3 segmentation(s)" in capsys.readouterr().out


def test_the_library_functions_keep_short_signatures():
    from minunet.evaluation import evaluate
    from minunet.cli.predict import predict
    from minunet.training.loop import train_one_epoch

    for function, most in ((fit, 10), (train_one_epoch, 8), (evaluate, 7), (predict, 7)):
        assert len(inspect.signature(function).parameters) <= most, function.__name__


def test_a_probability_becomes_a_decision_in_one_place():
    """The comparison of a probability with the threshold is written once in the library: Inference.masks."""
    found = [(f.name, n) for f in sorted((ROOT / "minunet").rglob("*.py"))
             for n, line in enumerate(f.read_text().splitlines(), 1)
             if re.search(r"[>]=?\s*(self\.|inference\.|settings\.)?threshold\b", line.split("#")[0])]
    assert found == [("inference.py", found[0][1])], found


def test_a_last_pt_written_by_fit_is_refused_by_minunet_train_resume_in_one_line(tmp_path, capsys):
    train_set = make_dataset("synthetic", "train", size=32, augment=True, limit=8)
    val_set = make_dataset("synthetic", "val", size=32, limit=4)
    torch.manual_seed(0)
    fit(UNet(base_channels=2), train_set, val_set, Recipe(epochs=1, batch_size=4), Runtime("cpu", "fp32"),
        on_epoch=RunFolder(str(tmp_path / "run")), log=None)
    state = load_checkpoint(str(tmp_path / "run" / "last.pt"))
    assert state.run["epochs"] == 1 and state.run["loss"] == Recipe().loss  # fit records its recipe
    assert main(["train", "--resume", str(tmp_path / "run" / "last.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "written by fit()" in err[0] and "data" in err[0], err
