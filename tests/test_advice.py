"""The core speaks of its own arguments; the command line words its advice as flags (issue 33, point 2): each
line names only a flag the command in hand has, whose type takes the value, and that the data leave to the
user. Also issue 34, cases 10 (--channels with a MedSegBench name) and 19 (the challenge folders' route for
every ISIC name)."""
import pytest
import torch
from PIL import Image

from minunet.checkpoint import load_checkpoint
from minunet.cli.advice import error_line
from minunet.cli.parser import build_parser
from minunet.data import make_dataset
from minunet.device import Runtime
from minunet.errors import Fix, SettingError
from minunet.models import UNet
from minunet.recipe import Recipe
from minunet.training import fit
from minunet.transforms import tensor_to_pil
from test_data_own_folder import make_folder
from test_multiclass_data import write_named
from test_robustness import TINY, exit_code_and_stderr, one_error_line, run  # noqa: F401 (run)
from test_data_npz import write_npz

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
SMALL = ["--model", "unet", "--base-channels", "4", "--batch-size", "2", "--limit", "4", "--epochs", "1",
         "--device", "cpu", "--precision", "fp32"]


def evaluate(run, *argv):
    return ["evaluate", "--checkpoint", str(run / "best.pt"), "--device", "cpu", *argv]


def test_fit_from_python_speaks_of_batch_size():
    train, val = (make_dataset("synthetic", split, size=32, limit=4) for split in ("train", "val"))
    with pytest.raises(SettingError) as e:
        fit(UNet(base_channels=4), train, val, Recipe(batch_size=8, epochs=1), Runtime("cpu", "fp32"), log=None)
    assert str(e.value) == "4 training images do not fill one batch of 8: pass batch_size=4 or less"


def test_advice_names_only_the_flags_of_the_command_and_of_a_run_resumed():
    parser = build_parser()
    err = SettingError("no", fix=[Fix(batch_size=2), Fix(root="DIR"), Fix(device="cpu"), Fix(classes=[2, 256])])
    for argv, line in ((["train"], "no: pass --batch-size 2, or --data-root DIR, or --device cpu, or --classes 2"),
                       (["train", "--resume", "r/last.pt"], "no: pass --data-root DIR, or --device cpu"),
                       (["evaluate", "--checkpoint", "c.pt"], "no: pass --batch-size 2, or --data-root DIR, or "
                                                              "--device cpu"),
                       (["predict", "--checkpoint", "c.pt", "--input", "i", "--output", "o"],
                        "no: pass --batch-size 2, or --device cpu")):
        args = parser.parse_args(argv)
        assert error_line(err, parser.commands[args.command], args) == line
    assert str(err) == "no: pass batch_size=2, or root=DIR, or device=cpu, or classes=2 or 256"


@pytest.mark.slow  # a tiny run (test_robustness.py's)
def test_evaluate_never_advises_classes_or_size_which_it_does_not_take(tmp_path, run, capsys):
    pairs = make_folder(tmp_path / "classes", n=8, lesion=1)
    for id_, (_, mask) in pairs.items():
        mask = mask.clone()
        mask[0, :3, :3] = 2  # a second foreground class in every mask
        tensor_to_pil(mask.to(torch.uint8)).save(tmp_path / "classes" / "masks" / f"{id_}.png")
    code, err = exit_code_and_stderr(evaluate(run, "--data", "folder", "--data-root", str(tmp_path / "classes")),
                                     capsys)
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"minunet evaluate: error: masks in {tmp_path / 'classes' / 'masks'} hold "
                                         f"the values 0, 1, 2 (")
    assert line.endswith("a label map with 3 classes, not a lesion mask: save the lesion as 255 and all else as 0")
    (tmp_path / "npz").mkdir()  # the run is at 32 px, medsegbench's files at 128, 256 or 512
    code, err = exit_code_and_stderr(evaluate(run, "--data", "isic2016", "--data-root", str(tmp_path / "npz")),
                                     capsys)
    assert code == 2 and one_error_line(err) == (
        "minunet evaluate: error: medsegbench's isic2016 comes at 128, 256 or 512 px, not 32: pass --data-root DIR "
        "holding the ISIC 2016 challenge folders (ISBI2016_ISIC_Part1_Training_Data/, ...) for any size")


@pytest.mark.slow  # tiny trainings
def test_classes_are_advised_only_where_the_flag_takes_them_and_they_would_work(tmp_path, capsys):
    make_folder(tmp_path / "lesions", n=8)  # 0/255 masks: 256 classes would be past --classes 255
    code, err = exit_code_and_stderr(["train", *TINY, "--data", "folder", "--data-root", str(tmp_path / "lesions"),
                                      "--classes", "3", "--out", str(tmp_path / "r")], capsys)
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"minunet train: error: mask {tmp_path / 'lesions' / 'masks'}")
    assert line.endswith("holds the values 0, 255, and 3 classes are class indices 0..2: save each pixel's class index (0 "
                         "for background)")
    (tmp_path / "wbc").mkdir()
    arrays = write_named(tmp_path / "wbc", "wbc", 3, 3)
    arrays["train_label"][0, 0, 0] = 5  # wbc names its 3 classes: --classes is refused for it
    write_npz(tmp_path / "wbc" / "wbc_128.npz", arrays)
    code, err = exit_code_and_stderr(["train", *SMALL, "--data", "wbc", "--data-root", str(tmp_path / "wbc"),
                                      "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: masks in {tmp_path / 'wbc' / 'wbc_128.npz'} (train_label) hold the values 0, 1, 2, 5, "
        f"and 3 classes are class indices 0..2: save each pixel's class index (0 for background)")
    pairs = make_folder(tmp_path / "palette", n=8)  # lesion masks as palette PNGs, 1 drawn red
    for id_, (_, mask) in pairs.items():
        picture = Image.frombytes("P", mask.shape[:0:-1], bytes(mask.to(torch.uint8).flatten().tolist()))
        picture.putpalette([0, 0, 0, 255, 0, 0])
        picture.save(tmp_path / "palette" / "masks" / f"{id_}.png")
    for classes in ([], ["--classes", "2"]):  # 2 classes are what was read: not advised
        code, err = exit_code_and_stderr(["train", *TINY, "--data", "folder", "--data-root",
                                          str(tmp_path / "palette"), *classes, "--out", str(tmp_path / "r")], capsys)
        line = one_error_line(err)
        assert code == 2 and line.startswith(f"minunet train: error: mask {tmp_path / 'palette' / 'masks'}")
        assert line.endswith("is a palette image in colour holding the values 0, 1: save it in grayscale, 0 for "
                             "background and 255 for lesion")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # a tiny training at 128 px
def test_channels_with_a_medsegbench_name_are_honoured(tmp_path):
    """Issue 34, case 10: --data kvasir --channels 1 trained a 3-channel model while the run recorded 1."""
    write_named(tmp_path, "kvasir", 2, 3)
    assert make_dataset("kvasir", "val", root=tmp_path, channels=1).spec.channels == 1
    out = tmp_path / "run"
    from minunet.cli import main
    assert main(["train", *SMALL, "--data", "kvasir", "--data-root", str(tmp_path), "--channels", "1",
                 "--out", str(out)]) == 0
    state = load_checkpoint(out / "best.pt")
    assert (state.channels, state.model_args["in_channels"], state.run["channels"]) == (1, 1, 1)


def test_every_isic_name_is_offered_its_challenge_folders_for_any_size(tmp_path, monkeypatch, capsys):
    """Issue 34, case 19: --data isic2018 --size 32 without --data-root offered only --size 128, 256 or 512."""
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.medsegbench, where the npz files would be
    for name, year, folder in (("isic2016", 2016, "ISBI2016_ISIC_Part1_Training_Data"),
                               ("isic2018", 2018, "ISIC2018_Task1-2_Training_Input")):
        code, err = exit_code_and_stderr(["train", *TINY, "--data", name, "--out", str(tmp_path / "r")], capsys)
        assert code == 2 and one_error_line(err) == (
            f"minunet train: error: medsegbench's {name} comes at 128, 256 or 512 px, not 32: pass --size 128, 256 "
            f"or 512, or --data-root DIR holding the ISIC {year} challenge folders ({folder}/, ...) for any size")
    code, err = exit_code_and_stderr(["train", *TINY, "--data", "isic2018", "--data-root", str(tmp_path / "nowhere"),
                                      "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: data root {tmp_path / 'nowhere'} is not a folder: pass --data-root DIR with "
        f"medsegbench's isic2018_{{128,256,512}}.npz or the ISIC 2018 challenge folders")
