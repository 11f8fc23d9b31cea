"""A recipe that knows its data (issue 35): which way up the images are decides the flips and turns of training
and the views TTA averages, decided in one place (minunet.data.modality), said in a note, recorded in the
checkpoint and used by evaluate and predict; a folder names its classes in classes.txt."""
import json

import pytest
import torch
from PIL import Image

from minunet.checkpoint import load_checkpoint
from minunet.cli import main
from minunet.data import DataError, LesionDataset, make_dataset
from minunet.data.modality import MODALITIES, kind_of, orientation_of
from minunet.inference import Inference
from minunet.recipe import Recipe
from minunet.transforms import RandomHorizontalFlip, RandomRotation, RandomVerticalFlip, tensor_to_pil
from test_multiclass_data import own_folder

UPRIGHT_NOTE = ("note: gray images have an up: training flips them left-right only and turns them by up to 15 "
                "degrees, and TTA averages the image and its left-right flip (--orientation any: every way)\n")


def test_every_named_dataset_has_a_modality_and_the_kind_of_images_decides_the_orientation():
    from minunet.data.catalog import dataset_names
    from minunet.data.challenges import LAYOUTS
    assert set(dataset_names()) | set(LAYOUTS) <= set(MODALITIES)  # a new name cannot be left undecided
    assert [orientation_of(n, c) for n, c in [("isic2016", True), ("isic2017", True), ("kvasir", True),
                                                ("wbc", True), ("drive", True), ("synthetic", False),
                                                ("folder", True)]] == ["any"] * 7
    assert [orientation_of(n, c) for n, c in [("covidquex", False), ("busi", False), ("promise12", False),
                                                ("mosmedplus", True), ("folder", False)]] == ["upright"] * 5
    assert kind_of("covidquex", False) == "X-ray images" and kind_of("folder", False) == "gray images"


def steps(dataset):
    return [type(t) for t in dataset.transform.transforms]


def test_an_upright_dataset_is_flipped_left_right_only_and_turned_less(tmp_path):
    root, xray = own_folder(tmp_path / "own", 3), gray_folder(tmp_path / "xray")
    gray = make_dataset("folder", "train", xray, 40, augment=True, classes=4, channels=1)
    colour = make_dataset("folder", "train", root, 40, augment=True, classes=3)
    assert (gray.orientation, colour.orientation) == ("upright", "any")
    assert make_dataset("folder", "train", root, 40, classes=3, channels=1).orientation == "any"  # colour, read gray
    assert RandomVerticalFlip not in steps(gray) and RandomHorizontalFlip in steps(gray)
    assert [t.degrees for t in gray.transform.transforms if isinstance(t, RandomRotation)] == [(-15, 15)]
    assert RandomVerticalFlip in steps(colour)
    assert [t.degrees for t in colour.transform.transforms if isinstance(t, RandomRotation)] == [(-30, 30)]
    # a recipe may say otherwise, and its augmentation says so to make_dataset; subsets keep the orientation
    turned = make_dataset("folder", "train", xray, 40, augment=Recipe(orientation="any").augmentation(), classes=4,
                          channels=1)
    assert RandomVerticalFlip in steps(turned) and turned.subset([0, 1]).orientation == "upright"
    assert Recipe().for_data(gray).orientation == "upright" and Recipe().for_data(colour).orientation == "any"
    assert Recipe(orientation="any").for_data(gray).orientation == "any"
    assert Recipe().augmentation() is True and Recipe(scale_shift=True).augmentation() == dict(scale=0.2, shift=0.1)


def test_the_views_tta_averages_follow_the_orientation():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 3, 3, padding=1)  # not symmetric: each flip gives other logits
    images = torch.randn(2, 1, 8, 10)

    def softmax(x):
        return torch.softmax(model(x), 1)

    upright = Inference(orientation="upright").probabilities(model, images, channels_last=False)
    expected = (softmax(images) + softmax(images.flip(-1)).flip(-1)) / 2
    assert torch.allclose(upright, expected, atol=1e-6)
    every = Inference().probabilities(model, images, channels_last=False)
    expected = sum(softmax(images.flip(d)).flip(d) for d in ((), (-1,), (-2,), (-2, -1))) / 4
    assert torch.allclose(every, expected, atol=1e-6) and not torch.allclose(every, upright, atol=1e-4)


def gray_folder(root, n=12, size=40):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        tensor_to_pil(torch.randint(0, 256, (1, size, size), generator=g, dtype=torch.uint8).expand(3, -1, -1)) \
            .convert("L").save(root / "images" / f"im{i:02d}.png")
        labels = torch.zeros(size, size, dtype=torch.uint8)
        labels[5:20, 5:30], labels[25:35, 10:20], labels[2:4, :] = 1, 2, 3
        Image.frombytes("L", (size, size), bytes(labels.flatten().tolist())).save(root / "masks" / f"im{i:02d}.png")
    return root


TINY = ["--size", "40", "--epochs", "1", "--batch-size", "4", "--base-channels", "4", "--device", "cpu"]


def test_a_gray_folder_trains_upright_says_so_records_it_and_evaluate_uses_it(tmp_path, capsys, monkeypatch):
    root = gray_folder(tmp_path / "xray")
    (root / "classes.txt").write_text("background\nlungs\nheart\nclavicles\n")
    assert main(["train", "--data", "folder", "--data-root", str(root), "--channels", "1", "--out",
                 str(tmp_path / "run"), *TINY]) == 0
    said = capsys.readouterr()
    assert UPRIGHT_NOTE in said.err and "4 classes: background, lungs, heart, clavicles" in said.out
    state = load_checkpoint(str(tmp_path / "run" / "best.pt"))
    assert state.run["orientation"] == "upright"
    assert Inference.of_checkpoint(state).orientation == "upright"
    assert tuple(state.classes) == ("background", "lungs", "heart", "clavicles")
    seen = []
    original = Inference.probabilities

    def spy(self, *args, **kwargs):
        seen.append(self.orientation)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(Inference, "probabilities", spy)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--data", "folder", "--data-root",
                 str(root), "--split", "val", "--json", str(out)]) == 0
    assert set(seen) == {"upright"}
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--card"]) == 0  # the card says so
    assert "test-time augmentation in validation: the image and its left-right flip" in capsys.readouterr().out
    assert {"lungs", "heart", "clavicles"} <= set(json.loads(out.read_text())["per_class"])
    # a run that says its orientation gets no note; a checkpoint from before the field is "any"
    assert main(["train", "--data", "folder", "--data-root", str(root), "--channels", "1", "--orientation", "any",
                 "--out", str(tmp_path / "any"), *TINY]) == 0
    assert "have an up" not in capsys.readouterr().err
    del state.run["orientation"]
    assert Inference.of_checkpoint(state).orientation == "any"


def test_gray_images_are_upright_whether_read_as_gray_or_as_rgb(tmp_path):
    root = gray_folder(tmp_path / "xray")  # gray PNGs, as JSRT's
    assert make_dataset("folder", "train", root, 40, classes=4).orientation == "upright"  # read as RGB
    assert make_dataset("folder", "train", root, 40, classes=4, channels=1).orientation == "upright"


def test_a_folder_names_its_classes_in_classes_txt_and_a_wrong_file_is_one_line(tmp_path, capsys):
    root = gray_folder(tmp_path / "xray")
    assert make_dataset("folder", "train", root, 40, channels=1, classes=4).spec.classes[1] == "class 1"
    (root / "classes.txt").write_text("background\n lungs \n\nheart\nclavicles\n")
    named = make_dataset("folder", "train", root, 40, channels=1)  # classes.txt says how many
    assert named.spec.classes == ("background", "lungs", "heart", "clavicles")
    with pytest.raises(DataError, match=r"classes.txt names 4 classes \(background, lungs, heart, clavicles\), "
                                        r"not 3: leave classes out$"):
        make_dataset("folder", "train", root, 40, channels=1, classes=3)
    assert main(["train", "--data", "folder", "--data-root", str(root), "--classes", "3", *TINY]) == 2
    assert capsys.readouterr().err.endswith("not 3: leave --classes out\n")
    (root / "classes.txt").write_text("background\nlungs\nlungs\n")
    with pytest.raises(DataError, match="it needs one name per class, each once"):
        make_dataset("folder", "train", root, 40, channels=1)


def test_predict_says_colour_images_were_made_gray_only_when_one_was(tmp_path, capsys):
    root = gray_folder(tmp_path / "xray")
    assert main(["train", "--data", "folder", "--data-root", str(root), "--channels", "1", "--classes", "4",
                 "--out", str(tmp_path / "run"), *TINY]) == 0
    capsys.readouterr()
    checkpoint = str(tmp_path / "run" / "best.pt")
    assert main(["predict", "--checkpoint", checkpoint, "--input", str(root / "images"), "--output",
                 str(tmp_path / "gray")]) == 0
    assert "colour" not in capsys.readouterr().err  # gray PNGs: nothing was converted
    colour = tmp_path / "colour"
    colour.mkdir()
    tensor_to_pil(torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)).save(colour / "c.png")
    assert main(["predict", "--checkpoint", checkpoint, "--input", str(colour), "--output",
                 str(tmp_path / "out")]) == 0
    assert ("note: the model reads gray images: 1 colour image(s) were converted to gray by their luma\n"
            in capsys.readouterr().err)


def test_the_isic_recipe_is_unchanged_by_the_orientation():
    """ISIC's images have no up: the pipeline, and every number it draws, is the one before the field."""
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    masks = (torch.rand(4, 1, 32, 32) > 0.5).to(torch.uint8)
    old = LesionDataset(images, masks, list("abcd"), augment=True, seed=3)
    new = LesionDataset(images, masks, list("abcd"), augment=Recipe(orientation="any").augmentation(), seed=3,
                        orientation="upright")
    assert steps(old) == steps(new) and all(torch.equal(a, b) for i in range(4) for a, b in zip(old[i], new[i])
                                            if isinstance(a, torch.Tensor))
