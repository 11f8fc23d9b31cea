"""Several classes and gray images end to end (issue 25): MedSegBench's npz files by name (written here, as
tests/test_data_npz.py does), a folder of label maps with --classes K, and train, evaluate and predict."""
import json

import pytest
import torch
from PIL import Image

from minunet.data.catalog import DataSpec
from minunet.checkpoint import load_checkpoint
from minunet.cli import main
from minunet.data import DataError, make_dataset
from minunet.transforms import tensor_to_pil
from test_data_npz import write_npz

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def label_split(n, k, size=128, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (n, size, size, 3) if channels == 3 else (n, size, size)  # gray: (N, H, W), as medsegbench stores it
    images = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return images, torch.randint(0, k, (n, size, size), generator=g, dtype=torch.uint8)


def write_named(root, name, k, channels, size=128):
    arrays = {}
    for i, split in enumerate(("train", "val", "test")):
        arrays[f"{split}_images"], arrays[f"{split}_label"] = label_split(6, k, size, channels, seed=i)
    write_npz(root / f"{name}_{size}.npz", arrays)
    return arrays


def test_a_named_dataset_of_three_classes_and_one_of_gray_images(tmp_path):
    arrays = write_named(tmp_path, "wbc", 3, 3)
    wbc = make_dataset("wbc", "val", root=tmp_path)
    assert wbc.spec == DataSpec(3, ("background", "cytoplasm", "nucleus")) and wbc.ids[0] == "wbc_val_0000"
    assert torch.equal(wbc.masks[:, 0], arrays["val_label"])  # class indices, as they are
    write_named(tmp_path, "busi", 2, 1)
    busi = make_dataset("busi", "train", root=tmp_path)
    image, mask, _ = busi[0]
    assert busi.spec.channels == 1 and image.shape == (1, 128, 128) and set(mask.unique().tolist()) <= {0, 1}
    with pytest.raises(DataError, match=r"^wbc has its own classes \(their number is chosen for folder and "
                                        r"synthetic data only\): leave classes out$"):
        make_dataset("wbc", "val", root=tmp_path, classes=3)


def test_labels_above_the_classes_and_a_missing_file_offline_are_one_line(tmp_path, monkeypatch):
    arrays = write_named(tmp_path, "wbc", 3, 3)
    arrays["val_label"][0, 0, 0] = 7
    write_npz(tmp_path / "wbc_128.npz", arrays)
    with pytest.raises(DataError) as e:
        make_dataset("wbc", "val", root=tmp_path)
    assert str(e.value).startswith(f"masks in {tmp_path / 'wbc_128.npz'} (val_label) hold the values 0, 1, 2, 7, "
                                   f"and 3 classes are class indices 0..2")

    import torchvision.datasets.utils

    def offline(url, root, filename, md5):
        assert md5 == "86b0bbd84f7df3726c29e6b605c83a72"  # INFO's, its stray space removed
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    with pytest.raises(DataError) as e:
        make_dataset("abdomenus", "train", root=tmp_path)
    message = str(e.value)
    assert "\n" not in message and str(tmp_path / "abdomenus_128.npz") in message
    assert "download abdomenus_128.npz from https://zenodo.org/records/13358372/files/abdomenus_128.npz" in message


def save_label_map(path, labels, palette):
    img = tensor_to_pil(labels[None].to(torch.uint8))
    if palette:  # a palette PNG whose colours are not its values
        img = img.convert("P")
        img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0, 0, 0] * 253)
    img.save(path)


def own_folder(root, k, n=12, size=40):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        tensor_to_pil(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)).save(
            root / "images" / f"im{i:02d}.png")
        labels = torch.randint(0, k, (size, size), generator=g)
        save_label_map(root / "masks" / f"im{i:02d}.png", labels, palette=i % 2 == 0)
    return root


def test_a_folder_of_label_maps_reads_with_classes_and_says_how_without(tmp_path):
    root = own_folder(tmp_path / "own", 3)
    ds = make_dataset("folder", "train", root=root, size=40, classes=3)
    assert ds.spec.classes == ("background", "class 1", "class 2")
    first = Image.open(root / "masks" / f"{ds.ids[0]}.png")
    stored = torch.frombuffer(bytearray(first.tobytes()), dtype=torch.uint8).view(40, 40)  # the indices, not colours
    assert torch.equal(ds.original_mask(0)[0], stored) and ds.masks.max() == 2
    with pytest.raises(DataError, match=r"is a palette image in colour holding the values 0, 1, 2: save it in "
                                         r"grayscale, .*, or pass classes=3 if they are class indices$"):
        make_dataset("folder", "train", root=root, size=40)  # a palette mask
    for i in range(0, 12, 2):  # the same label maps as 8-bit gray
        mask = Image.open(root / "masks" / f"im{i:02d}.png")
        Image.frombytes("L", mask.size, mask.tobytes()).save(root / "masks" / f"im{i:02d}.png")
    with pytest.raises(DataError, match=r"a label map with 3 classes, not a lesion mask: .*, or pass classes=3 to "):
        make_dataset("folder", "train", root=root, size=40)
    with pytest.raises(DataError, match=r"hold the values 0, 1, 2, and 2 classes|pass classes=3"):
        make_dataset("folder", "train", root=root, size=40, classes=2)


def test_train_evaluate_and_predict_three_classes_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic", "--classes", "3", "--channels", "1", "--limit", "8", "--size", "32",
                 "--epochs", "1", "--batch-size", "4", "--base-channels", "4", "--device", "cpu", "--out",
                 str(out)]) == 0
    state = load_checkpoint(str(out / "best.pt"))
    assert state.classes == ("background", "lesion", "ink") and state.channels == 1
    assert state.model_args["in_channels"] == 1 and state.model_args["out_channels"] == 3
    capsys.readouterr()
    assert main(["train", "--resume", str(out / "last.pt"), "--classes", "2"]) == 2  # the run's classes hold
    assert "--classes 2 (the run's: 3) contradicts it" in capsys.readouterr().err
    assert main(["train", "--resume", str(out / "last.pt")]) == 0  # finished: its files rewritten from last.pt
    assert "nothing to resume" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", "synthetic", "--limit", "4",
                 "--device", "cpu", "--json", str(tmp_path / "m.json"), "--report", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<h2>Per class</h2>" in page and "<h2>Confusion matrix</h2>" in page
    assert page.count("worst") >= 2 and "ink: worst" in page
    header = (tmp_path / "rep" / "per_image.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["id", "dice"] and "dice/ink" in header and header[-1] == "flags"
    scores = json.loads((tmp_path / "m.json").read_text())
    assert set(scores["per_class"]) == {"background", "lesion", "ink"} and len(scores["confusion"]) == 3
    assert sum(map(sum, scores["confusion"])) == 4 * 32 * 32 and "dice" in scores["per_class"]["ink"]
    assert "ink" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", "synthetic", "--threshold", "0.3"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "in").mkdir()
    Image.new("RGB", (50, 30), (200, 120, 90)).save(tmp_path / "in" / "a.jpg")
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "masks"), "--overlay", "--device", "cpu"]) == 0
    assert "converted to gray" in capsys.readouterr().err
    written = Image.open(tmp_path / "masks" / "a_Segmentation.png")
    values = set(torch.frombuffer(bytearray(written.tobytes()), dtype=torch.uint8).tolist())
    assert written.mode == "P" and written.size == (50, 30) and values <= {0, 1, 2}
    assert Image.open(tmp_path / "masks" / "a_overlay.png").size == (50, 30)


def test_a_16_bit_label_map_is_read_by_its_values_and_a_value_beyond_the_classes_is_named(tmp_path):
    """Issue 34, case 8: 16-bit label maps 0/1/2 with one stray pixel of 300 and --classes 3 were read by their
    high byte (class 1 kept one pixel, class 2 vanished) and trained on."""
    import struct

    root = own_folder(tmp_path / "own", 3)
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (40, 40), generator=g)
    for i in range(12):
        Image.frombytes("I;16", (40, 40), b"".join(struct.pack("<H", v) for v in labels.flatten().tolist())) \
            .save(root / "masks" / f"im{i:02d}.png")
    assert Image.open(root / "masks" / "im00.png").mode == "I;16"
    ds = make_dataset("folder", "train", root=root, size=40, classes=3)
    assert all(torch.equal(ds.original_mask(i)[0], labels.to(torch.uint8)) for i in range(len(ds)))
    stray = labels.clone()
    stray[5, 7] = 300
    Image.frombytes("I;16", (40, 40), b"".join(struct.pack("<H", v) for v in stray.flatten().tolist())) \
        .save(root / "masks" / "im03.png")
    for split in ("train", "val"):  # im03 is in one of them; the other reads
        try:
            make_dataset("folder", split, root=root, size=40, classes=3)
        except DataError as e:
            assert str(e).startswith(f"mask {root / 'masks' / 'im03.png'} holds the values 0, 1, 2, 300, and 3 classes are "
                                     f"class indices 0..2"), str(e)
            break
    else:
        pytest.fail("the stray 300 was read")


def test_a_model_is_scored_only_on_data_of_its_own_classes_by_name(tmp_path):
    """Issue 34, case 9: a wbc model (cytoplasm, nucleus) evaluated on bkai-igh (polyps) was scored and printed
    under wbc's names: only the count of classes was compared."""
    from minunet.data import dataset_for

    write_named(tmp_path, "bkai-igh", 3, 3)
    wbc = DataSpec(3, ("background", "cytoplasm", "nucleus"))
    with pytest.raises(DataError) as e:
        dataset_for(wbc, "bkai-igh", "val", tmp_path)
    assert str(e.value) == ("the model was trained on 3 classes (background, cytoplasm, nucleus) and bkai-igh has 3 "
                            "(background, neoplastic polyps, non-neoplastic polyps): evaluate it on data of its own "
                            "classes")
    with pytest.raises(DataError, match=r"trained on 3 classes \(background, lesion, ink\) and bkai-igh has 3"):
        dataset_for(DataSpec(3, ("background", "lesion", "ink")), "bkai-igh", "val", tmp_path)
    # classes a model or a folder does not name, and two classes by any names, are taken
    assert len(dataset_for(DataSpec(3, ("background", "class 1", "class 2")), "bkai-igh", "val", tmp_path)) == 6
    own = own_folder(tmp_path / "own", 3)
    assert dataset_for(wbc, "folder", "val", own, 40).spec.classes == ("background", "class 1", "class 2")
    write_named(tmp_path, "kvasir", 2, 3)
    assert len(dataset_for(DataSpec(3, ("background", "lesion")), "kvasir", "val", tmp_path)) == 6


def test_three_classes_refuse_tune_threshold_and_say_what_a_bce_loss_trains(tmp_path, capsys):
    """Issue 34, case 11: for K > 2 classes each pixel takes its most probable class (MONAI's argmax), so
    --tune-threshold has nothing to tune and is refused before any work; --loss bce trains its softmax
    counterpart, cross-entropy (as MONAI's DiceCELoss and smp do), and says so, instead of ignoring the flag."""
    from minunet import UNet
    from minunet.errors import SettingError
    from minunet.recipe import Recipe
    from minunet.training import fit

    train = ["train", "--data", "synthetic", "--classes", "3", "--limit", "8", "--size", "32", "--epochs", "1",
             "--batch-size", "4", "--base-channels", "4", "--device", "cpu"]
    assert main(train + ["--tune-threshold", "--out", str(tmp_path / "tuned")]) == 2
    assert capsys.readouterr().err == ("minunet train: error: there is no threshold to tune with 3 classes: each "
                                       "pixel takes its most probable class: leave --tune-threshold out\n")
    assert not (tmp_path / "tuned").exists()
    assert main(train + ["--loss", "bce", "--out", str(tmp_path / "ce")]) == 0
    assert ("note: --loss bce with 3 classes trains ce, CE: cross-entropy of the softmax is BCE's counterpart for "
            "several classes\n") in capsys.readouterr().err
    assert main(train + ["--loss", "dice", "--out", str(tmp_path / "dice")]) == 0
    assert "--loss" not in capsys.readouterr().err  # the softmax's Dice is still Dice: nothing to say
    data = [make_dataset("synthetic", split, size=32, limit=8, classes=3) for split in ("train", "val")]
    with pytest.raises(SettingError, match="^there is no threshold to tune with 3 classes: .*: leave "
                                           "tune_threshold out$"):  # fit, too, in its caller's words
        fit(UNet(out_channels=3, base_channels=4), *data, Recipe(tune_threshold=True, epochs=1, batch_size=4),
            log=None)


def test_label_maps_of_background_alone_are_refused_and_masks_without_background_are_noted(tmp_path, capsys):
    """Issue 34, case 6: label maps that hold class 0 alone trained to "val Dice 1.0000" (then, with absent
    classes left out, to nan): refused, as a split of empty lesion masks is; masks without a background pixel
    (every pixel lesion, or of a foreground class) trained to Dice 1.0 without a word: a note."""
    root = own_folder(tmp_path / "background", 1)  # every pixel class 0
    assert main(["train", "--data", "folder", "--data-root", str(root), "--classes", "3", "--size", "40", "--epochs",
                 "1", "--batch-size", "4", "--base-channels", "4", "--device", "cpu", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"minunet train: error: all 11 train masks in {root / 'masks'} hold only class 0, "
                                       f"the background: there is no class to learn or score; save each pixel's class "
                                       f"index, 1 to 2 for the classes to find\n")
    assert not (tmp_path / "run").exists()
    arrays = write_named(tmp_path, "wbc", 3, 3)
    arrays["val_label"].zero_()
    write_npz(tmp_path / "wbc_128.npz", arrays)
    with pytest.raises(DataError, match=r"^all 6 val masks in .*wbc_128.npz \(val_label\) hold only class 0, the "):
        make_dataset("wbc", "val", root=tmp_path)
    assert make_dataset("wbc", "train", root=tmp_path).spec.classes[2] == "nucleus"  # the train split holds them
    for i in range(12):  # no background pixel: classes 1 and 2 only
        labels = 1 + (torch.arange(40 * 40).view(40, 40) + i) % 2
        save_label_map(root / "masks" / f"im{i:02d}.png", labels, palette=False)
    notes = make_dataset("folder", "train", root=root, size=40, classes=3).notes
    assert notes == ["class 'background' is in no mask of these 11 images: every pixel is of a foreground class, "
                     "so a model learns no background, and the scores say only how it tells those classes apart"]
    for i in range(12):  # lesion masks, every pixel lesion
        tensor_to_pil(torch.full((1, 40, 40), 255, dtype=torch.uint8)).save(root / "masks" / f"im{i:02d}.png")
    assert make_dataset("folder", "val", root=root, size=40).notes == [
        "class 'background' is in no mask of these 1 image: every pixel is lesion, so a model that calls every "
        "pixel lesion scores Dice 1 on them"]
