"""The third hostile-user probe (issue 34), the cases of the commands: an npz split of no images through train
and evaluate, predict and evaluate in the precision export is checked in, --resume with flags that repeat the
run's own values, what ctrl-C and --resume say, --workers beyond the cores. Each ends in the right result or one
line on stderr with exit 2 (130 for ctrl-C), and nothing of the user's is lost. docs/robustness.md has a row per
case; the data cases are in test_data_npz.py and test_multiclass_data.py."""
import os
import subprocess
import sys
import warnings

import pytest
import torch

from minunet import cli
from minunet.cli.parser import build_parser
from minunet.checkpoint import load_checkpoint
from minunet.data import read_image
from minunet.inference import Inference
from test_data_npz import fake_split, write_npz
from test_robustness import ENV, TINY, exit_code_and_stderr, one_error_line, run, snapshot  # noqa: F401 (run)
from test_user_errors import copy_run, images

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


# 2: an npz whose val (or test) arrays hold 0 images, through the commands

def test_an_npz_split_of_no_images_is_one_line_in_train_and_evaluate(tmp_path, capsys):
    images_, labels = fake_split(4)
    path, flags = tmp_path / "isic2016_128.npz", ["--data", "isic2016", "--data-root", str(tmp_path)]
    full = {f"{split}_{kind}": t for split in ("train", "val", "test") for kind, t in (("images", images_),
                                                                                      ("label", labels))}
    write_npz(path, full)
    assert cli.main(["train", *TINY, *flags, "--size", "128", "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    write_npz(path, dict(full, val_images=images_[:0], val_label=labels[:0], test_images=images_[:0],
                         test_label=labels[:0]))
    capsys.readouterr()
    code, err = exit_code_and_stderr(["train", *TINY, *flags, "--size", "128", "--epochs", "1", "--out",
                                      str(tmp_path / "b")], capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: {path} holds no val images (val_images is (0, 128, 128, 3)): every split needs at "
        f"least one: delete it to download it again, or pass --data-root DIR holding a complete file")
    assert not (tmp_path / "b").exists()
    code, err = exit_code_and_stderr(["evaluate", "--checkpoint", str(tmp_path / "a" / "best.pt"), *flags,
                                      "--split", "test", "--device", "cpu"], capsys)
    assert code == 2 and "holds no test images" in one_error_line(err)
    assert "images of isic2016" not in capsys.readouterr().out


# 13: predict and evaluate run in fp32 unless asked, so that predict's masks are the exported model's

def test_predict_and_evaluate_take_precision_and_default_to_the_exported_models_fp32(tmp_path, run, capsys):
    parser = build_parser()
    for command in (["predict", "--checkpoint", "c.pt", "--input", "i", "--output", "o"],
                    ["evaluate", "--checkpoint", "c.pt"]):
        assert parser.parse_args(command).precision == "fp32"
        for precision in ("auto", "fp32", "bf16", "fp16"):
            assert parser.parse_args([*command, "--precision", precision]).precision == precision
    inputs = images(tmp_path / "in", "a.png", "b.png", "c.png", "d.png", size=48)
    assert cli.main(["predict", "--checkpoint", str(run / "best.pt"), "--input", str(inputs), "--output",
                     str(tmp_path / "masks"), "--no-tta", "--device", "cpu"]) == 0
    assert cli.main(["export", "--checkpoint", str(run / "best.pt"), "--format", "torchscript", "--output",
                     str(tmp_path / "model.pt")]) == 0
    with warnings.catch_warnings():  # torch's FutureWarning: torch.jit.load is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        exported = torch.jit.load(str(tmp_path / "model.pt"))  # probabilities of normalised images, BN folded
    inference = Inference.of_checkpoint(load_checkpoint(str(run / "best.pt")), tta=False)
    for name in "abcd":
        image = read_image(str(inputs / f"{name}.png"))  # (3, 48, 48) uint8
        with torch.no_grad():
            probs = exported(inference.prepare(image)[1][None])  # (1, 1, 32, 32)
        expected = inference.masks(probs, image.shape[1:])[0, 0]  # (48, 48) bool
        written = read_image(str(tmp_path / "masks" / f"{name}_Segmentation.png"))[0] > 127  # (48, 48)
        assert torch.equal(written, expected), f"{name}: {(written != expected).sum()} pixels differ"
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", "synthetic", "--limit", "4",
                     "--device", "cpu", "--precision", "bf16"]) == 0
    assert "4 images of synthetic val" in capsys.readouterr().out


# 14, 15: --resume with the run's own --channels and --classes; what it says of where it starts

def test_resume_takes_the_runs_own_channels_and_classes_and_says_where_it_starts(tmp_path, run, capsys):
    out = copy_run(run, tmp_path / "run", epochs=3)  # 2 of 3 epochs done; the run gave no --channels, --classes
    before = snapshot(out)
    code, err = exit_code_and_stderr(["train", "--resume", str(out / "last.pt"), "--channels", "1"], capsys)
    assert code == 2 and "--channels 1 (the run's: 3) contradicts it" in one_error_line(err)
    code, err = exit_code_and_stderr(["train", "--resume", str(out / "last.pt"), "--classes", "3"], capsys)
    assert code == 2 and "--classes 3 (the run's: 2) contradicts it" in one_error_line(err)
    assert snapshot(out) == before
    assert cli.main(["train", "--resume", str(out / "last.pt"), "--channels", "3", "--classes", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"resuming {out / 'last.pt'} after epoch 2 of 3" and lines[1].startswith("epoch 3/3")


def test_ctrl_c_while_an_epochs_files_are_written_prints_its_line_once_last_pt_holds_it(tmp_path, monkeypatch,
                                                                                           capsys):
    from minunet.cli import rundir

    write_history = rundir.write_history

    def interrupted_at_epoch_2(history, path):
        if len(history) == 2:
            raise KeyboardInterrupt  # ctrl-C after last.pt of epoch 2 was written, before history.csv
        write_history(history, path)

    out = tmp_path / "run"
    monkeypatch.setattr(rundir, "write_history", interrupted_at_epoch_2)
    assert cli.main(["train", *TINY, "--limit", "16", "--epochs", "3", "--out", str(out)]) == 130
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert one_error_line(captured.err) == "minunet train: interrupted"
    assert [line[:9] for line in captured.out.splitlines()] == ["epoch 1/3", "epoch 2/3"]  # in last.pt: said
    assert load_checkpoint(str(out / "last.pt")).epoch == 2
    assert cli.main(["train", "--resume", str(out / "last.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"resuming {out / 'last.pt'} after epoch 2 of 3" and lines[1].startswith("epoch 3/3")
    assert [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()] == ["epoch", "1", "2", "3"]


def test_ctrl_c_during_training_prints_no_line_for_the_unfinished_epoch(tmp_path, monkeypatch, capsys):
    from minunet.training import loop

    train_one_epoch, calls = loop.train_one_epoch, []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_one_epoch(*args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(loop, "train_one_epoch", interrupted_in_epoch_2)
    assert cli.main(["train", *TINY, "--limit", "16", "--epochs", "3", "--out", str(out)]) == 130
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert one_error_line(captured.err) == "minunet train: interrupted"
    assert [line[:9] for line in captured.out.splitlines()] == ["epoch 1/3"]
    assert cli.main(["train", "--resume", str(out / "last.pt")]) == 0
    assert capsys.readouterr().out.startswith(f"resuming {out / 'last.pt'} after epoch 1 of 3\nepoch 2/3")


# 20: --workers beyond the cores: one line of minunet's own, not torch's warning twice

def test_workers_beyond_the_cores_are_said_once(tmp_path):
    def one_core():
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    flags = ["--workers", "2", "--device", "cpu"]
    for argv in (["train", *TINY, "--limit", "8", "--epochs", "1", "--out", str(tmp_path / "run"), *flags],
                 ["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--data", "synthetic", "--limit",
                  "4", *flags]):
        p = subprocess.run([sys.executable, "-m", "minunet", *argv], capture_output=True, text=True, env=ENV,
                           timeout=300, preexec_fn=one_core)
        assert p.returncode == 0, p.stderr
        about_workers = [line for line in p.stderr.splitlines() if "worker" in line.lower()]
        assert about_workers == ["note: --workers 2 starts 2 DataLoader processes for the 1 CPU core this process "
                                 "may use: loading may run slower than with fewer, or stall; pass --workers 1 or "
                                 "fewer"], p.stderr
