"""Issue 23 (the second hostile-user probe), data side, through the command line: label maps and empty masks
in a user's folder, a user's folder passed as --data isic2016, and file names in two Unicode forms. Each ends
in the right result or one line on stderr and exit code 2, with the user's files as they were."""
import os

import pytest
import torch

from minunet import cli
from minunet.data import make_dataset
from minunet.transforms import tensor_to_pil
from test_data_own_folder import make_folder
from test_robustness import TINY, exit_code_and_stderr, one_error_line

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # tiny trainings (conftest.py: one_thread)


def train(root, out, *extra):
    return ["train", *TINY, "--data", "folder", "--data-root", str(root), "--limit", "8", "--epochs", "1",
            "--out", str(out), *extra]


def test_label_maps_train_as_lesions_or_are_refused(tmp_path, capsys):
    make_folder(tmp_path / "threes", n=8, lesion=3)  # a label map: 0 background, 3 lesion
    make_folder(tmp_path / "usual", n=8, lesion=255)  # the same pairs, 0 and 255
    for split in ("train", "val"):
        threes, usual = (make_dataset("folder", split, tmp_path / name, size=32) for name in ("threes", "usual"))
        assert torch.equal(threes.masks, usual.masks) and all(mask.any() for mask in threes.masks)
    assert cli.main(train(tmp_path / "threes", tmp_path / "run")) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"note: masks in {tmp_path / 'threes' / 'masks'} hold 0 and 3, not 0 and 255: read 3 as lesion"]

    classes = tmp_path / "classes"
    pairs = make_folder(classes, n=8, lesion=1)
    for id_, (_, mask) in pairs.items():
        mask = mask.clone()
        mask[0, :3, :3] = 2  # a second foreground class in every mask
        tensor_to_pil(mask.to(torch.uint8)).save(classes / "masks" / f"{id_}.png")
    before = {name: (classes / "masks" / name).read_bytes() for name in os.listdir(classes / "masks")}
    code, err = exit_code_and_stderr(train(classes, tmp_path / "run3"), capsys)
    assert code == 2 and one_error_line(err).startswith(
        f"minunet train: error: masks in {classes / 'masks'} hold the values 0, 1, 2 (")
    assert "a label map with 3 classes" in err and "pass --classes 3 to read them as class indices 0..2" in err
    assert not (tmp_path / "run3").exists()
    assert before == {name: (classes / "masks" / name).read_bytes() for name in os.listdir(classes / "masks")}


def test_a_folder_of_empty_masks_is_refused_before_training(tmp_path, capsys):
    pairs = make_folder(tmp_path, n=8)
    for id_, (_, mask) in pairs.items():
        tensor_to_pil((mask * 0).to(torch.uint8)).save(tmp_path / "masks" / f"{id_}.png")
    code, err = exit_code_and_stderr(train(tmp_path, tmp_path / "run"), capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: all 7 train masks in {tmp_path / 'masks'} are empty (no lesion pixel): there is no "
        f"lesion to learn or score; draw each lesion in its mask as 255 on 0")


def test_a_users_folder_passed_as_isic2016_is_pointed_to_data_folder(tmp_path, capsys, monkeypatch):
    import torchvision.datasets.utils
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", lambda *a, **k: pytest.fail("a download"))
    make_folder(tmp_path / "mine", n=8)
    before = sorted(p.name for p in (tmp_path / "mine").rglob("*"))
    argv = ["train", *TINY, "--data", "isic2016", "--data-root", str(tmp_path / "mine"), "--out", str(tmp_path / "r")]
    code, err = exit_code_and_stderr(argv, capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: {tmp_path / 'mine'} holds images/ and masks/, a folder of your own (isic2016 reads "
        f"the ISIC 2016 challenge folders or medsegbench's npz files): pass --data folder --data-root "
        f"{tmp_path / 'mine'}")
    assert before == sorted(p.name for p in (tmp_path / "mine").rglob("*"))
    assert cli.main(train(tmp_path / "mine", tmp_path / "r")) == 0  # as the line says
