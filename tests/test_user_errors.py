"""Issue 17: each mistake a user can make on the command line ends in one line on stderr and exit code 2 (or
just works), and nothing on disk is replaced unless asked. Every case runs `minunet.cli.main` in this process
on the tiny run of test_robustness.py (a 4-channel U-Net at 32 px); docs/robustness.md lists the lines."""
import os
import struct

import pytest
import torch
from PIL import Image

from minunet.cli import parser as cli  # main and build_parser

from minunet.cli import commands
from minunet.checkpoint import load_checkpoint
from minunet.data import make_dataset, read_image, synthetic_lesion
from minunet.cli.rundir import RUN_FILES
from minunet.transforms import pil_to_tensor, tensor_to_pil
from test_data_own_folder import make_folder
from test_robustness import TINY, digest, exit_code_and_stderr, one_error_line, run, snapshot  # noqa: F401 (run)

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # robustness: the full suite's (conftest.py: one_thread)


def images(folder, *names, size=48):
    """Write synthetic lesion images `names` into `folder` (made if missing); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(len(names))
    for name in names:
        tensor_to_pil(synthetic_lesion(size, g)[0]).save(folder / name)
    return folder


def predict(run, *argv):
    return ["predict", "--checkpoint", str(run / "best.pt"), "--device", "cpu", *argv]


def evaluate(run, *argv):
    return ["evaluate", "--checkpoint", str(run / "best.pt"), "--data", "synthetic", "--limit", "4", "--device",
            "cpu", *argv]


def main_ok(argv):
    return cli.main(argv) == 0


def mask_pixels(path):
    return pil_to_tensor(Image.open(path), mode="L")  # (1, H, W) uint8


# ---------------------------------------------------------------------------------------------------------
# predict never replaces a file it did not write, unless asked

def test_predict_refuses_to_replace_ground_truth_in_output(tmp_path, run, capsys):
    inputs, out = images(tmp_path / "in", "a.png", "b.png"), tmp_path / "out"
    out.mkdir()
    (out / "a_Segmentation.png").write_bytes(b"the user's ground truth")
    code, err = exit_code_and_stderr(predict(run, "--input", str(inputs), "--output", str(out)), capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet predict: error: {out / 'a_Segmentation.png'} already exists: minunet predict does not replace "
        f"files it did not write; pass another --output, or --overwrite to replace them")
    assert os.listdir(out) == ["a_Segmentation.png"] and (out / "a_Segmentation.png").read_bytes() == \
        b"the user's ground truth"
    code, err = exit_code_and_stderr(predict(run, "--input", str(inputs), "--output", str(out), "--overlay",
                                             "--report", str(tmp_path / "report")), capsys)
    assert code == 2 and "already exists" in one_error_line(err) and not (tmp_path / "report").exists()

    assert main_ok(predict(run, "--input", str(inputs), "--output", str(out), "--overwrite"))
    assert main_ok(predict(run, "--input", str(inputs), "--output", str(tmp_path / "fresh")))
    for name in ("a_Segmentation.png", "b_Segmentation.png"):  # replaced by what predict writes anywhere
        assert torch.equal(mask_pixels(out / name), mask_pixels(tmp_path / "fresh" / name))


def test_predict_with_output_equal_to_input_keeps_the_ground_truth_there(tmp_path, run, capsys):
    folder = images(tmp_path / "isic", "a.png", "b.png")
    (folder / "a_Segmentation.png").write_bytes(b"truth a")  # the challenge's layout: masks beside images
    (folder / "b_Segmentation.png").write_bytes(b"truth b")
    before = snapshot(folder)
    code, err = exit_code_and_stderr(predict(run, "--input", str(folder), "--output", str(folder)), capsys)
    assert code == 2 and one_error_line(err).startswith(
        f"minunet predict: error: {folder / 'a_Segmentation.png'} and 1 more already exist: minunet predict does "
        f"not replace files it did not write")
    assert snapshot(folder) == before


def test_predict_overlay_refuses_an_existing_overlay(tmp_path, run, capsys):
    inputs, out = images(tmp_path / "in", "a.png"), tmp_path / "out"
    out.mkdir()
    (out / "a_overlay.png").write_bytes(b"mine")
    code, err = exit_code_and_stderr(predict(run, "--input", str(inputs), "--output", str(out), "--overlay"),
                                     capsys)
    assert code == 2 and one_error_line(err).startswith(
        f"minunet predict: error: {out / 'a_overlay.png'} already exists")
    assert os.listdir(out) == ["a_overlay.png"]
    # without --overlay predict does not write a_overlay.png, so it goes ahead and leaves the file alone
    assert main_ok(predict(run, "--input", str(inputs), "--output", str(out)))
    assert sorted(os.listdir(out)) == ["a_Segmentation.png", "a_overlay.png"]
    assert (out / "a_overlay.png").read_bytes() == b"mine"
    assert main_ok(predict(run, "--input", str(inputs), "--output", str(out), "--overlay", "--overwrite"))
    assert Image.open(out / "a_overlay.png").size == (48, 48)


def test_predict_into_its_input_folder_twice_never_reads_its_own_results(tmp_path, run, capsys):
    folder = images(tmp_path / "in", "a.png")
    for _ in range(2):
        assert main_ok(predict(run, "--input", str(folder), "--output", str(folder), "--overlay", "--overwrite"))
        assert capsys.readouterr().out.strip() == f"wrote 1 segmentation(s) to {folder}"
    assert sorted(os.listdir(folder)) == ["a.png", "a_Segmentation.png", "a_overlay.png"]


def test_two_inputs_with_one_stem_are_refused_before_anything_is_written(tmp_path, run, capsys):
    inputs = images(tmp_path / "in", "a.png", "b.jpg", "b.png")
    for out in (tmp_path / "new", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        code, err = exit_code_and_stderr(predict(run, "--input", str(inputs), "--output", str(out), "--report",
                                                 str(tmp_path / "report")), capsys)
        assert code == 2 and one_error_line(err) == (
            f"minunet predict: error: {inputs / 'b.jpg'} and {inputs / 'b.png'} would both be written to "
            f"b_Segmentation.png: rename one of them or segment them into separate --output folders")
        assert (os.listdir(out) == []) if out.name == "empty" else not out.exists()
        assert not (tmp_path / "report").exists()


# ---------------------------------------------------------------------------------------------------------
# train --out: any file a run writes marks a run

@pytest.mark.parametrize("name", RUN_FILES)
def test_train_out_holding_any_run_file_is_refused(tmp_path, run, capsys, name):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes((run / name).read_bytes())
    code, err = exit_code_and_stderr(["train", *TINY, "--limit", "8", "--epochs", "1", "--out", str(out)], capsys)
    resume = f"--resume {out / 'last.pt'} to continue it, " if name == "last.pt" else ""  # only a last.pt resumes
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: {out} already holds a run ({name}): pass {resume}--overwrite to replace it, or "
        f"another --out")
    assert os.listdir(out) == [name] and digest(out / name) == digest(run / name)


# ---------------------------------------------------------------------------------------------------------
# numeric flags: out of range or junk is one line from argparse; the bounds themselves are accepted

ARGV = {"train": ["train"], "evaluate": ["evaluate", "--checkpoint", "c.pt"],
        "predict": ["predict", "--checkpoint", "c.pt", "--input", "in", "--output", "out"]}
BIG = "99999999999999999999"


@pytest.mark.parametrize("command, flag, value, message", [
    ("train", "--seed", BIG, f"{BIG} must be at least 0 and at most 4294967295"),
    ("train", "--seed", "-1", "-1 must be at least 0 and at most 4294967295"),
    ("train", "--seed", "1.5", "'1.5' is not a whole number"),
    ("train", "--epochs", "0", "0 must be at least 1"),
    ("train", "--epochs", "ten", "'ten' is not a whole number"),
    ("train", "--batch-size", "0", "0 must be at least 1 and at most 65536"),
    ("train", "--batch-size", BIG, f"{BIG} must be at least 1 and at most 65536"),
    ("evaluate", "--batch-size", BIG, f"{BIG} must be at least 1 and at most 65536"),
    ("predict", "--batch-size", "-4", "-4 must be at least 1 and at most 65536"),
    ("train", "--lr", "0", "0 must be a number above 0 and at most 1, such as 1e-3"),
    ("train", "--lr", "1e9", "1e9 must be a number above 0 and at most 1, such as 1e-3"),
    ("train", "--lr", "inf", "inf must be a number above 0 and at most 1, such as 1e-3"),
    ("train", "--lr", "nan", "nan must be a number above 0 and at most 1, such as 1e-3"),
    ("train", "--base-channels", "0", "0 must be at least 1 and at most 256"),
    ("train", "--base-channels", "257", "257 must be at least 1 and at most 256"),
    ("train", "--limit", "0", "0 must be at least 1"),
    ("evaluate", "--limit", "-2", "-2 must be at least 1"),
    ("train", "--workers", "-1", "-1 must be at least 0 and at most 64"),
    ("evaluate", "--workers", "65", "65 must be at least 0 and at most 64"),
    ("train", "--ema", "0", "0 must be a number above 0 and below 1"),
    ("train", "--ema", "1", "1 must be a number above 0 and below 1"),  # 1: the average never moves
    ("train", "--ema", "0.9x", "'0.9x' is not a number"),
    ("evaluate", "--threshold", "0", "0 must be a number above 0 and below 1"),
    ("evaluate", "--threshold", "1", "1 must be a number above 0 and below 1"),  # 1: no pixel is ever lesion
    ("predict", "--threshold", "1.5", "1.5 must be a number above 0 and below 1"),
    ("predict", "--threshold", "nan", "nan must be a number above 0 and below 1"),
    ("train", "--size", "12x", "'12x' is not a size: pass one number (128) or HxW (192x256)"),
    ("train", "--size", "1x2x3", "'1x2x3' is not a size: pass one number (128) or HxW (192x256)"),
    ("train", "--size", "x", "'x' is not a size: pass one number (128) or HxW (192x256)"),
    ("train", "--size", "-64", "'-64' is not a size: pass one number (128) or HxW (192x256)"),
    ("train", "--size", "1e2", "'1e2' is not a size: pass one number (128) or HxW (192x256)"),
    ("train", "--size", "0x5", "0x5 is too small: the U-Nets need images of at least 32 x 32"),
    ("train", "--size", "31", "31 is too small: the U-Nets need images of at least 32 x 32"),
    ("train", "--size", "5000", "5000 is too large: images of at most 4096 x 4096"),
    ("train", "--size", "192x5000", "192x5000 is too large: images of at most 4096 x 4096"),
])
def test_numeric_flags_out_of_range_or_junk_are_one_line(monkeypatch, capsys, command, flag, value, message):
    for name in ("train_command", "evaluate_command", "predict_command"):  # an accepted value must not run
        monkeypatch.setattr(cli, name, lambda args: pytest.fail(f"{flag} {value} was accepted"))
    code, err = exit_code_and_stderr([*ARGV[command], f"{flag}={value}"], capsys)
    assert code == 2 and one_error_line(err) == \
        f"minunet {command}: error: argument {flag}: {message} (see minunet {command} --help)"


@pytest.mark.parametrize("command, flag, value, parsed", [
    ("train", "--size", "192x256", (192, 256)), ("train", "--size", "256X256", 256), ("train", "--size", "32", 32),
    ("train", "--size", "4096x32", (4096, 32)), ("train", "--seed", "4294967295", 4294967295),
    ("train", "--seed", "0", 0), ("train", "--lr", "1", 1.0), ("train", "--ema", "0.999", 0.999),
    ("train", "--base-channels", "256", 256), ("train", "--workers", "0", 0), ("evaluate", "--workers", "64", 64),
    ("predict", "--batch-size", "65536", 65536), ("predict", "--threshold", "0.3", 0.3),
])
def test_numeric_flags_at_their_bounds_are_accepted(command, flag, value, parsed):
    args = cli.build_parser().parse_args([*ARGV[command], flag, value])
    assert getattr(args, flag[2:].replace("-", "_")) == parsed


# ---------------------------------------------------------------------------------------------------------
# out of memory: what to lower, in one line

CPU_OOM = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to "
           "allocate 123 bytes")


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError(CPU_OOM), MemoryError()])
def test_out_of_memory_says_what_to_lower(tmp_path, run, monkeypatch, capsys, error):
    def runs_out(*args, **kwargs):
        raise error
    detail = f" ({error})" if str(error) else ""
    for name, argv, advice in (
            ("fit", ["train", *TINY, "--limit", "8", "--out", str(tmp_path / "r")],
             "--batch-size or --size or --base-channels"),
            ("evaluate", evaluate(run), "--batch-size"),  # evaluate and predict take the checkpoint's size
            ("predict", predict(run, "--input", str(images(tmp_path / "in", "a.png")), "--output",
                                str(tmp_path / "out")), "--batch-size")):
        monkeypatch.setattr(commands, name, runs_out)
        code, err = exit_code_and_stderr(argv, capsys)
        assert code == 2 and one_error_line(err) == f"minunet {argv[0]}: error: out of memory{detail}: lower {advice}"


def test_other_runtime_errors_still_show_their_traceback(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("a bug in minunet")
    monkeypatch.setattr(commands, "fit", bug)
    with pytest.raises(RuntimeError, match="a bug in minunet"):
        cli.main(["train", *TINY, "--limit", "8", "--out", str(tmp_path / "r")])


# ---------------------------------------------------------------------------------------------------------
# folders where files are expected, and broken links

def test_a_folder_as_checkpoint_or_encoder_weights_says_it_is_a_folder(tmp_path, run, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    for argv in (["evaluate", "--checkpoint", str(folder)], ["train", "--resume", str(folder)],
                 ["predict", "--checkpoint", str(folder), "--input", str(run), "--output", str(tmp_path / "p")]):
        code, err = exit_code_and_stderr(argv, capsys)
        assert code == 2 and one_error_line(err) == \
            f"minunet {argv[0]}: error: checkpoint {folder} is a folder: pass the best.pt or last.pt inside it"
    code, err = exit_code_and_stderr(["train", *TINY, "--model", "resunet34", "--encoder-weights", str(folder),
                                      "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: the encoder weights {folder} are a folder: pass --encoder-weights PATH of "
        f"torchvision's resnet34-b627a593.pth, or --encoder-weights imagenet or none")
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_predict_skips_a_folder_and_a_broken_link_named_like_images(tmp_path, run, capsys):
    inputs = images(tmp_path / "in", "a.png")
    (inputs / "b.png").mkdir()
    (inputs / "c.jpg").symlink_to(tmp_path / "gone.jpg")
    out = tmp_path / "out"
    assert main_ok(predict(run, "--input", str(inputs), "--output", str(out)))
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"skipped: cannot read {inputs / 'b.png'}: it is a folder, not an image file: move or rename it",
        f"skipped: cannot read {inputs / 'c.jpg'}: it is a broken link (to {tmp_path / 'gone.jpg'}, which does "
        f"not exist): fix or remove the link"]
    assert captured.out.strip() == f"wrote 1 segmentation(s) to {out}; skipped 2 unreadable image(s)"
    assert os.listdir(out) == ["a_Segmentation.png"]


# ---------------------------------------------------------------------------------------------------------
# --resume: another --epochs, a finished run, a read-only last.pt

def copy_run(run, folder, epochs=None):
    """A copy of the tiny run in `folder`; with `epochs`, its last.pt says the run was started for that many."""
    folder.mkdir()
    for name in RUN_FILES:
        (folder / name).write_bytes((run / name).read_bytes())
    if epochs is not None:
        state = load_checkpoint(str(folder / "last.pt"))
        state.run["epochs"] = epochs
        state.save(str(folder / "last.pt"))
    return folder


def test_resume_with_other_epochs_is_refused_and_changes_nothing(tmp_path, run, capsys):
    out = copy_run(run, tmp_path / "run", epochs=3)  # 2 of 3 epochs done
    before = snapshot(out)
    code, err = exit_code_and_stderr(["train", "--resume", str(out / "last.pt"), "--epochs", "5"], capsys)
    assert code == 2 and one_error_line(err) == (
        "minunet train: error: --resume continues a run of 3 epochs as it was started (its learning rate schedule "
        "depends on them): leave out --epochs, or start a new run with --epochs 5")
    assert snapshot(out) == before


def test_resume_of_a_finished_run_says_so_and_keeps_its_files(tmp_path, run, capsys):
    out = copy_run(run, tmp_path / "run")
    before = snapshot(out)
    for extra in ([], ["--epochs", "2"]):  # the run's own --epochs is no change
        assert main_ok(["train", "--resume", str(out / "last.pt"), *extra])
        captured = capsys.readouterr()
        assert captured.out.strip() == (f"nothing to resume: {out} has finished all 2 epochs (history.csv and "
                                         f"curves.png rewritten from last.pt)")
        assert captured.err == ""
        assert {k: v for k, v in snapshot(out).items() if k != "curves.png"} == \
            {k: v for k, v in before.items() if k != "curves.png"}  # history.csv too: rewritten the same


def test_resume_refuses_a_read_only_last_pt_even_as_root(tmp_path, run, capsys):
    out = copy_run(run, tmp_path / "run", epochs=3)
    last = out / "last.pt"
    last.chmod(0o444)
    if os.geteuid() == 0:  # why the mode bits are read: os.access says root may write any file
        assert os.access(last, os.W_OK)
    before = snapshot(out)
    code, err = exit_code_and_stderr(["train", "--resume", str(last)], capsys)
    assert code == 2 and one_error_line(err) == (
        f"minunet train: error: {last} is read-only: resuming would replace it; make it writable (chmod u+w) or "
        f"copy the run to another --out")
    assert snapshot(out) == before and last.stat().st_mode & 0o777 == 0o444


# ---------------------------------------------------------------------------------------------------------
# masks of 0 and 1, 16-bit images, EXIF orientation

def test_masks_of_0_and_1_are_noted_and_read_as_lesion(tmp_path, capsys):
    make_folder(tmp_path / "ones", n=8, lesion=1)  # 8-bit PNG masks that look black
    make_folder(tmp_path / "255", n=8, lesion=255)  # the same pairs, masks of 0 and 255
    for split in ("train", "val"):
        ones, usual = (make_dataset("folder", split, tmp_path / name, size=32) for name in ("ones", "255"))
        assert torch.equal(ones.masks, usual.masks) and all(mask.any() for mask in ones.masks)
    note = f"note: masks in {tmp_path / 'ones' / 'masks'} hold 0 and 1, not 0 and 255: read 1 as lesion"
    checkpoint = tmp_path / "run" / "best.pt"
    train = ["train", *TINY, "--data", "folder", "--data-root", str(tmp_path / "ones"), "--limit", "8",
                     "--epochs", "1", "--out", str(tmp_path / "run")]
    assert main_ok(train)
    assert capsys.readouterr().err.splitlines() == [note]
    assert main_ok(["evaluate", "--checkpoint", str(checkpoint), "--data", "folder", "--data-root",
                    str(tmp_path / "ones"), "--device", "cpu"])
    assert capsys.readouterr().err.splitlines() == [note]


def sixteen_bit_png(path, values, width, height):
    """Write 16-bit grayscale pixels (a list of ints in 0..65535, row by row) as a PNG (Pillow's mode I;16)."""
    Image.frombytes("I;16", (width, height), struct.pack(f"<{len(values)}H", *values)).save(path)


def test_a_16_bit_png_is_segmented_as_its_8_bit_twin(tmp_path, run):
    width, height = 40, 36
    values = [(x * 65535) // (width - 1) if (x - 20) ** 2 + (y - 18) ** 2 > 100 else 4000
              for y in range(height) for x in range(width)]  # a dark disc on a ramp from 0 to 65535
    sixteen_bit_png(tmp_path / "deep.png", values, width, height)
    assert Image.open(tmp_path / "deep.png").mode.startswith("I;16")
    image = read_image(tmp_path / "deep.png")  # (3, H, W) uint8
    high_bytes = torch.tensor(values).view(1, height, width) >> 8
    assert image.max() == 255 and image.min() == 0 and not (image == 255).all()  # not clipped to white
    assert torch.equal(image, high_bytes.expand(3, -1, -1).to(torch.uint8))
    tensor_to_pil(high_bytes.to(torch.uint8)).save(tmp_path / "twin.png")  # the same image in 8 bits
    for name in ("deep.png", "twin.png"):
        assert main_ok(predict(run, "--input", str(tmp_path / name), "--output", str(tmp_path / "out")))
    deep, twin = (tmp_path / "out" / f"{name}_Segmentation.png" for name in ("deep", "twin"))
    assert Image.open(deep).size == (width, height)
    assert torch.equal(mask_pixels(deep), mask_pixels(twin))


def test_an_exif_rotated_jpeg_gets_a_mask_at_the_size_viewers_show(tmp_path, run):
    stored = synthetic_lesion(48, torch.Generator().manual_seed(3))[0][:, :32, :]  # (3, 32, 48): 48 wide, 32 high
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to show
    tensor_to_pil(stored.contiguous()).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    from PIL import ImageOps
    ImageOps.exif_transpose(Image.open(tmp_path / "phone.jpg")).save(tmp_path / "shown.png")  # as viewers show it
    assert Image.open(tmp_path / "shown.png").size == (32, 48)
    for name in ("phone.jpg", "shown.png"):
        assert main_ok(predict(run, "--input", str(tmp_path / name), "--output", str(tmp_path / "out")))
    phone, shown = (tmp_path / "out" / f"{name}_Segmentation.png" for name in ("phone", "shown"))
    assert Image.open(phone).size == (32, 48)  # width and height swapped against the stored pixels
    assert torch.equal(mask_pixels(phone), mask_pixels(shown))


# ---------------------------------------------------------------------------------------------------------
# other outputs: --json, --figure, --report

def test_evaluate_json_or_figure_that_is_a_folder_is_refused_before_any_work(tmp_path, run, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    for flag, example in (("--json", "metrics.json"), ("--figure", "cases.png")):
        code, err = exit_code_and_stderr(evaluate(run, flag, str(folder)), capsys)
        assert code == 2 and one_error_line(err) == \
            f"minunet evaluate: error: {flag} {folder} is a folder: pass a file name, such as {folder / example}"
        assert capsys.readouterr().out == ""  # refused before evaluating
    assert os.listdir(folder) == []


def test_evaluate_json_and_figure_into_a_missing_folder_make_it(tmp_path, run):
    import json
    json_path, figure = tmp_path / "new" / "m.json", tmp_path / "figures" / "deep" / "cases.png"
    assert main_ok(evaluate(run, "--json", str(json_path), "--figure", str(figure)))
    assert json.loads(json_path.read_text())["count"] == 4
    assert Image.open(figure).format == "PNG"


def test_outputs_in_the_way_of_a_file_are_one_line_before_any_work(tmp_path, run, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    inputs = images(tmp_path / "in", "a.png")
    folder = "is a file, not a folder: pass a folder (it is made if missing)"
    for argv, line in (
            (evaluate(run, "--report", str(a_file)), f"--report {a_file} {folder}"),
            (evaluate(run, "--report", str(a_file / "sub")), f"--report {a_file / 'sub'}: {a_file} {folder}"),
            (predict(run, "--input", str(inputs), "--output", str(tmp_path / "o"), "--report", str(a_file / "sub")),
             f"--report {a_file / 'sub'}: {a_file} {folder}"),
            (predict(run, "--input", str(inputs), "--output", str(a_file / "sub" / "deeper")),
             f"--output {a_file / 'sub' / 'deeper'}: {a_file} {folder}"),
            (evaluate(run, "--json", str(a_file / "m.json")),
             f"--json {a_file / 'm.json'}: {a_file} is a file, not a folder: pass a file name in a folder"),
            (evaluate(run, "--figure", str(a_file / "sub" / "cases.png")),
             f"--figure {a_file / 'sub' / 'cases.png'}: {a_file} is a file, not a folder: pass a file name in a "
             f"folder")):
        code, err = exit_code_and_stderr(argv, capsys)
        assert code == 2 and one_error_line(err) == f"minunet {argv[0]}: error: {line}"
        assert capsys.readouterr().out == ""  # refused before evaluating or predicting
    assert a_file.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["a_file", "in"]


def test_predict_report_in_the_output_folder_beside_the_masks(tmp_path, run, capsys):
    inputs, out = images(tmp_path / "in", "a.png", "b.png"), tmp_path / "out"
    assert main_ok(predict(run, "--input", str(inputs), "--output", str(out), "--report", str(out)))
    assert sorted(os.listdir(out)) == ["a_Segmentation.png", "b_Segmentation.png", "per_image.csv", "report.html"]
    assert [row.split(",")[0] for row in (out / "per_image.csv").read_text().splitlines()] == ["id", "a", "b"]


def test_a_report_already_in_the_report_folder_is_replaced(tmp_path, run):
    inputs = images(tmp_path / "in", "a.png")
    for name, argv in (("evaluate", evaluate(run)), ("predict", predict(run, "--input", str(inputs), "--output",
                                                                         str(tmp_path / "masks")))):
        report = tmp_path / name
        report.mkdir()
        (report / "report.html").write_text("an older report")
        (report / "per_image.csv").write_text("older rows")
        assert main_ok([*argv, "--report", str(report)])  # --report DIR asks for DIR/report.html: replaced
        assert (report / "report.html").read_text().startswith("<!DOCTYPE html>")
        assert (report / "per_image.csv").read_text().startswith("id,")
        assert sorted(os.listdir(report)) == ["per_image.csv", "report.html"]
