"""The second hostile-user probe (issue 23), the cases of the commands: --figure names, a resume that contradicts
its run or moves its data or folder, what predict passes over, what a report leaves out, an image too large for
the memory, a report folder in the way, a full disk while writing curves.png. Each ends in the right result or
one line on stderr with exit 2, and nothing of the user's is lost. docs/robustness.md has a row per case."""
import errno
import os
import shutil

import pytest

from minunet import cli
from minunet.checkpoint import load_checkpoint
from test_robustness import TINY, exit_code_and_stderr, one_error_line, run, snapshot  # noqa: F401 (run)
from test_user_errors import copy_run, evaluate, images, predict

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


# 1, 4: --figure names: a format matplotlib cannot write, no extension, a file that exists

@pytest.mark.parametrize("name, words", [("cases.xyz", "ends in .xyz, which matplotlib cannot write"),
                                         ("cases", "has no file extension")])
def test_a_figure_name_matplotlib_would_not_write_as_given_is_refused_before_any_work(tmp_path, run, capsys,
                                                                                      name, words):
    (tmp_path / "cases.png").write_bytes(b"the user's own figure")
    code, err = exit_code_and_stderr(evaluate(run, "--figure", str(tmp_path / name)), capsys)
    assert code == 2 and words in one_error_line(err) and "cases.png" in err
    assert "images of synthetic" not in capsys.readouterr().out  # refused before the evaluation
    assert sorted(os.listdir(tmp_path)) == ["cases.png"] and (tmp_path / "cases.png").read_bytes() == \
        b"the user's own figure"


def test_figure_and_json_never_replace_a_file_without_overwrite(tmp_path, run, capsys):
    for flag, name in (("--figure", "cases.png"), ("--json", "m.json")):
        (tmp_path / name).write_bytes(b"kept")
        code, err = exit_code_and_stderr(evaluate(run, flag, str(tmp_path / name)), capsys)
        assert code == 2 and one_error_line(err) == (f"minunet evaluate: error: {flag} {tmp_path / name} already "
                                                     f"exists: pass --overwrite to replace it, or another file name")
        assert (tmp_path / name).read_bytes() == b"kept"
        assert cli.main(evaluate(run, flag, str(tmp_path / name), "--overwrite")) == 0
        assert (tmp_path / name).read_bytes() != b"kept"


# 5: --resume with flags that contradict the run

def test_resume_with_contradicting_flags_names_each_and_changes_nothing(tmp_path, run, capsys):
    out = copy_run(run, tmp_path / "run", epochs=3)  # 2 of 3 epochs done
    before = snapshot(out)
    code, err = exit_code_and_stderr(["train", "--resume", str(out / "last.pt"), "--model", "resunet34", "--size",
                                      "64", "--lr", "0.5", "--loss", "dice", "--ema", "0.9"], capsys)
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"minunet train: error: --resume continues {out / 'last.pt'} as it was "
                                         f"started, and --model resunet34 (the run's: unet), --size 64 (the run's: "
                                         f"32), --lr 0.5 (the run's: 0.001), --loss dice (the run's: bce_jaccard), "
                                         f"--ema 0.9 (the run's: none) contradict it")
    for flags in (["--data", "folder"], ["--limit", "8"], ["--no-tta"], ["--precision", "bf16"]):
        code, err = exit_code_and_stderr(["train", "--resume", str(out / "last.pt"), *flags], capsys)
        assert code == 2 and f"and {' '.join(flags)} (the run's: " in one_error_line(err), flags
        assert "contradicts it" in err, flags
    assert snapshot(out) == before
    assert cli.main(["train", "--resume", str(out / "last.pt"), "--size", "32", "--model", "unet"]) == 0  # agreeing


# 9, 17: --resume into a new --out, unfinished or finished

def test_resume_into_a_new_out_holds_a_best_pt_and_names_only_files_that_are_there(tmp_path, run, capsys):
    source = copy_run(run, tmp_path / "run", epochs=3)
    new = tmp_path / "new" / "deeper"
    assert cli.main(["train", "--resume", str(source / "last.pt"), "--out", str(new)]) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert sorted(os.listdir(new)) == ["best.pt", "curves.png", "history.csv", "last.pt"]
    assert last_line.endswith(f"wrote {new}/best.pt, last.pt, history.csv, curves.png")
    assert load_checkpoint(str(new / "best.pt")).best_dice == load_checkpoint(str(new / "last.pt")).best_dice
    finished = tmp_path / "elsewhere"
    assert cli.main(["train", "--resume", str(new / "last.pt"), "--out", str(finished)]) == 0
    assert capsys.readouterr().out.strip() == (f"nothing to resume: {finished} has finished all 3 epochs "
                                               f"(history.csv and curves.png rewritten from last.pt)")
    assert sorted(os.listdir(finished)) == ["best.pt", "curves.png", "history.csv", "last.pt"]


# 12: --resume after the data moved

def test_resume_takes_a_new_data_root_holding_the_same_images_and_refuses_other_images(tmp_path, capsys,
                                                                                          monkeypatch):
    from test_data_own_folder import make_folder

    make_folder(tmp_path / "data", n=12)
    data, out = tmp_path / "data", tmp_path / "run"
    flags = ["--data", "folder", "--model", "unet", "--base-channels", "4", "--size", "32", "--batch-size", "4",
             "--device", "cpu", "--precision", "fp32"]
    monkeypatch.chdir(tmp_path)  # a relative --data-root: stored absolute, so resuming from anywhere works
    assert cli.main(["train", *flags, "--data-root", "data", "--epochs", "2", "--out", str(out)]) == 0
    monkeypatch.chdir(out)
    assert load_checkpoint(str(out / "last.pt")).run["data_root"] == str(data)
    state = load_checkpoint(str(out / "last.pt"))
    state.run["epochs"], state.epoch, state.history = 3, 1, state.history[:1]
    state.save(str(out / "last.pt"))
    moved = tmp_path / "moved"
    shutil.move(str(data), str(moved))
    capsys.readouterr()
    code, err = exit_code_and_stderr(["train", "--resume", str(out / "last.pt")], capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: the run's data root {data} (from {out / 'last.pt'}) is not a folder: pass "
        f"--data-root DIR where its images are now")
    make_folder(tmp_path / "other", n=12, first=50)  # as many images, other ones
    code, err = exit_code_and_stderr(["train", "--resume", str(out / "last.pt"), "--data-root",
                                      str(tmp_path / "other")], capsys)
    assert code == 2 and "holds other images than the run was trained on" in one_error_line(err)
    assert cli.main(["train", "--resume", str(out / "last.pt"), "--data-root", str(moved)]) == 0
    assert load_checkpoint(str(out / "last.pt")).run["data_root"] == str(moved)


# 7: predict passes over images named like its outputs, and says so

def test_predict_says_which_inputs_it_passed_over_and_why(tmp_path, run, capsys):
    inputs = images(tmp_path / "in", "patient_overlay.png", "scan_Segmentation.png", "lesion.png")
    code, err = exit_code_and_stderr(predict(run, "--input", str(inputs), "--output", str(tmp_path / "out")), capsys)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all("named like a file predict writes" in line for line in lines)
    assert [line.split(": ")[1] for line in lines] == [str(inputs / "patient_overlay.png"),
                                                       str(inputs / "scan_Segmentation.png")]
    assert cli.main(predict(run, "--input", str(inputs), "--output", str(tmp_path / "out2"))) == 0
    assert capsys.readouterr().out.strip() == (f"wrote 1 segmentation(s) to {tmp_path / 'out2'}; skipped 2 file(s) "
                                               f"of --input that are not images to segment")


# 8: the report names the pairs it left out

def test_the_evaluation_report_names_the_skipped_pairs(tmp_path, run, capsys):
    from test_data_own_folder import make_folder

    make_folder(tmp_path / "data", n=4, test=4)
    data = tmp_path / "data"
    (data / "test" / "images" / "lesion_1001.png").write_bytes(b"not a png")
    (data / "test" / "masks" / "lesion_1002.png").write_bytes(b"")
    assert cli.main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", "folder", "--data-root",
                     str(data), "--split", "test", "--device", "cpu", "--report", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<h2>Skipped: 2</h2>" in page and "lesion_1001.png" in page and "lesion_1002.png" in page


# 11: one image too large for the memory: skipped with its size, the others segmented

def test_an_image_too_large_for_the_memory_is_skipped_and_the_rest_segmented(tmp_path, run, capsys, monkeypatch):
    from minunet.inference import Inference

    inputs = images(tmp_path / "in", "a.png", "b.png")
    from PIL import Image
    Image.new("RGB", (3000, 2000), (200, 120, 90)).save(inputs / "huge.png")
    real = Inference.masks

    def short_of_memory(self, probs, size=None):  # as the allocator fails under a memory cap
        if size is not None and size[0] * size[1] > 10 ** 6:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 24000000 bytes")
        return real(self, probs, size)
    monkeypatch.setattr(Inference, "masks", short_of_memory)
    code, err = exit_code_and_stderr(predict(run, "--input", str(inputs), "--output", str(tmp_path / "out")), capsys)
    assert code == 0 and one_error_line(err) == (
        f"skipped: {inputs / 'huge.png'}: its 3000x2000 pixels did not fit in memory: shrink it (e.g. to 2000 pixels "
        f"on its longest side) and segment it again")
    assert sorted(os.listdir(tmp_path / "out")) == ["a_Segmentation.png", "b_Segmentation.png"]


def test_a_decompression_bomb_warning_never_leaks(tmp_path, run, capfd, monkeypatch):
    from PIL import Image

    inputs = images(tmp_path / "in", "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 48 x 48 = 2304 pixels: a warning (an error from 4000)
    assert cli.main(predict(run, "--input", str(inputs), "--output", str(tmp_path / "out"))) == 0
    assert "DecompressionBomb" not in capfd.readouterr().err


# 13: a report folder whose report.html is a folder

def test_a_report_file_that_is_a_folder_is_refused_before_anything_is_replaced(tmp_path, run, capsys):
    rep = tmp_path / "rep"
    (rep / "report.html").mkdir(parents=True)
    (rep / "per_image.csv").write_text("the previous report's rows")
    for argv in (evaluate(run, "--report", str(rep)),
                 predict(run, "--input", str(images(tmp_path / "in", "a.png")), "--output", str(tmp_path / "o"),
                         "--report", str(rep))):
        code, err = exit_code_and_stderr(argv, capsys)
        assert code == 2 and one_error_line(err).endswith(
            f"--report {rep}: {rep / 'report.html'} is a folder: move it away, or pass another --report")
        assert ".tmp" not in err and (rep / "per_image.csv").read_text() == "the previous report's rows"


# 15: a full disk while writing curves.png

def test_a_full_disk_while_writing_curves_names_the_file_and_how_to_resume(tmp_path, monkeypatch, capsys):
    import minunet.plots

    def no_space(history, path, loss="bce_jaccard"):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(minunet.plots, "plot_history", no_space)
    out = tmp_path / "run"
    code = cli.main(["train", *TINY, "--limit", "8", "--epochs", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and one_error_line(captured.err) == (
        f"minunet train: error: cannot write {out / 'curves.png'} (No space left on device); {out / 'last.pt'} of "
        f"epoch 1 is intact: make room, then resume with --resume {out / 'last.pt'}")
    assert captured.out.startswith("epoch 1/2")  # the finished epoch's line
    assert load_checkpoint(str(out / "last.pt")).epoch == 1


def test_two_inputs_whose_names_differ_only_in_unicode_form_are_refused(tmp_path, run, capsys):
    import unicodedata

    composed, decomposed = unicodedata.normalize("NFC", "lésion"), unicodedata.normalize("NFD", "lésion")
    inputs = images(tmp_path / "in", f"{composed}.png", f"{decomposed}.jpg")
    code, err = exit_code_and_stderr(predict(run, "--input", str(inputs), "--output", str(tmp_path / "out")), capsys)
    assert code == 2 and "would both be written to" in one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_a_checkpoint_is_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    from minunet import UNet
    from minunet.checkpoint import save_checkpoint

    save_checkpoint(str(tmp_path / "last.pt"), UNet(base_channels=2), epoch=1)
    before = (tmp_path / "last.pt").read_bytes()

    def interrupted(fd):  # ctrl-C with the new checkpoint in its temporary file, before the rename
        assert os.fstat(fd).st_size > 0
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(str(tmp_path / "last.pt"), UNet(base_channels=2), epoch=2)
    assert os.listdir(tmp_path) == ["last.pt"] and (tmp_path / "last.pt").read_bytes() == before
