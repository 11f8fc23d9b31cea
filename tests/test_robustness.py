"""Robustness (issue 9): resuming a killed run, atomic and safe checkpoints, training guards, unreadable
images in predict and evaluate, and DistributedDataParallel under torchrun against a single process.

The runs are tiny (a 4-channel U-Net on 32 x 32 synthetic lesions) and each subprocess uses one thread, so
the file stays fast and leaves the machine's other cores alone.
"""
import hashlib
import io
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from minunet.cli import main
from minunet.cli.rundir import RunFolder
from minunet.losses import LOSSES
from minunet.recipe import Recipe
from minunet.checkpoint import load_checkpoint
from minunet.transforms import tensor_to_pil

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "docs" / "samples"
TINY = ["--data", "synthetic", "--model", "unet", "--base-channels", "4", "--size", "32", "--batch-size", "4",
        "--device", "cpu", "--precision", "fp32"]
TIMING = {"train_seconds", "train_images_per_s", "val_seconds", "elapsed_seconds"}  # the only history columns that may differ
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore::DeprecationWarning")


pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # robustness: the full suite's (conftest.py: one_thread)


def minunet(*argv, **kwargs):
    """Start `python -m minunet ARGV` (one thread); the Popen, with text stdout and stderr pipes."""
    return subprocess.Popen([sys.executable, "-m", "minunet", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, **kwargs)


def run_minunet(*argv, timeout=300):
    """Run `python -m minunet ARGV` to the end: (exit code, stdout, stderr)."""
    p = minunet(*argv)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def one_error_line(err):
    """The single line a user error prints on stderr (fails the test on a traceback or extra lines)."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def weights(path):
    return load_checkpoint(str(path)).state_dict


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, first {different[:3]}"


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# 1. A run killed with SIGKILL in the middle of epoch 2 and resumed ends exactly as an uninterrupted run

@pytest.mark.slow  # over 2 s
def test_resume_after_sigkill_mid_epoch_ends_with_the_same_weights(tmp_path):
    # 48 training images = 12 steps an epoch: long enough (about half a second) to be killed inside one
    flags = [*TINY, "--limit", "48", "--epochs", "3", "--seed", "5"]
    a, b = tmp_path / "a", tmp_path / "b"
    uninterrupted = minunet("train", *flags, "--out", str(a))  # runs alongside the killed one

    killed = minunet("train", *flags, "--out", str(b))
    for line in killed.stdout:  # the epoch line is printed after last.pt, history.csv and curves.png are written
        if line.startswith("epoch 1/3"):
            break
    else:
        pytest.fail(f"the run ended before epoch 1 finished: {killed.stderr.read()}")
    images_per_s = float(re.search(r"([\d.]+) img/s", line).group(1))
    time.sleep(0.4 * 48 / images_per_s)  # about 40 % into epoch 2's training
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    killed.stdout.close()
    killed.stderr.close()
    state = load_checkpoint(str(b / "last.pt"))
    assert state.epoch == 1, "the kill came after epoch 2 had finished: not a mid-epoch kill"

    code, out, err = run_minunet("train", "--resume", str(b / "last.pt"), "--device", "cpu")
    assert code == 0, err
    assert "epoch 2/3" in out and "epoch 3/3" in out and "epoch 1/3" not in out
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()
    uninterrupted.stdout.close()
    uninterrupted.stderr.close()

    last_a, last_b = load_checkpoint(str(a / "last.pt")), load_checkpoint(str(b / "last.pt"))
    assert last_a.epoch == last_b.epoch == 3
    assert_same_weights(last_a.state_dict, last_b.state_dict)  # BatchNorm buffers included
    assert_same_weights(weights(a / "best.pt"), weights(b / "best.pt"))
    assert without_timing(last_a.history) == without_timing(last_b.history)
    assert [r["epoch"] for r in last_b.history] == [1, 2, 3]
    # the optimizer and the schedule went on from where they were, not from scratch
    assert last_a.training_state["scheduler"] == last_b.training_state["scheduler"]
    moments_a, moments_b = last_a.training_state["optimizer"]["state"], last_b.training_state["optimizer"]["state"]
    assert all(torch.equal(moments_a[i]["exp_avg_sq"], moments_b[i]["exp_avg_sq"]) for i in moments_a)
    csv_a = [line.split(",")[:6] for line in (a / "history.csv").read_text().splitlines()]
    assert csv_a == [line.split(",")[:6] for line in (b / "history.csv").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------------
# Shared: one finished tiny run, trained in this process

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 2-epoch run (best.pt, last.pt, history.csv, curves.png) of the tiny U-Net at 32 px."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--limit", "16", "--epochs", "2", "--out", str(out)]) == 0
    return out


def snapshot(folder):
    """{file name: sha256} of a folder: to show that nothing in it changed."""
    return {p.name: digest(p) for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------------------------------------
# 2. last.pt is written atomically: a crash while writing it leaves the previous one intact

def epoch_of(data):
    """The epoch of the checkpoint whose file holds the bytes `data`."""
    return torch.load(io.BytesIO(data), weights_only=True)["epoch"]


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, full_disk):
    from minunet.checkpoint import CheckpointError, save_checkpoint
    from minunet.models.unet import UNet

    path = tmp_path / "last.pt"
    torch.manual_seed(0)
    first = UNet(base_channels=4)
    save_checkpoint(str(path), first, size=32, epoch=1)
    before = digest(path)
    second = UNet(base_channels=4)  # other weights
    full_disk(lambda name, data: True)
    with pytest.raises(CheckpointError, match=r"cannot write .*last\.pt \(No space left on device\); the previous "
                                              r"last\.pt, if any, is kept"):
        save_checkpoint(str(path), second, size=32, epoch=2)
    assert digest(path) == before
    state = load_checkpoint(str(path))
    assert state.epoch == 1
    assert_same_weights(state.state_dict, first.state_dict())
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file beside it


@pytest.mark.slow  # over 2 s
def test_a_full_disk_in_epoch_2_stops_training_with_one_line_and_keeps_epoch_1(tmp_path, full_disk, capsys):
    out, before = tmp_path / "run", {}

    def last_pt_of_epoch_2(path, data):
        if path.endswith("last.pt") and epoch_of(data) == 2:
            before["last.pt"] = digest(out / "last.pt")  # last.pt of epoch 1, as the failing write begins
            return True
        return False
    full_disk(last_pt_of_epoch_2)
    code = main(["train", *TINY, "--limit", "16", "--epochs", "3", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    line = one_error_line(err)
    assert line.startswith("minunet train: error: cannot write") and "last.pt" in line
    assert digest(out / "last.pt") == before["last.pt"]
    assert load_checkpoint(str(out / "last.pt")).epoch == 1
    assert sorted(os.listdir(out)) == ["best.pt", "curves.png", "history.csv", "last.pt"]  # no temporary file


def test_a_full_disk_under_predict_and_a_report_names_the_file_and_keeps_the_old_report(tmp_path, run, full_disk,
                                                                                        capsys):
    # issue 34, case 17: "[Errno 28] No space left on device" named no file; --report left a new per_image.csv
    # beside the old report.html
    samples, out, report = str(SAMPLES), tmp_path / "masks", tmp_path / "report"
    full_disk(lambda path, data: path.endswith("_overlay.png"))
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input", samples, "--output", str(out),
                 "--overlay"]) == 2
    first = sorted(os.listdir(SAMPLES))[0].rsplit(".", 1)[0]
    assert one_error_line(capsys.readouterr().err) == (f"minunet predict: error: {out / first}_overlay.png: No space "
                                                       f"left on device")
    assert os.listdir(out) == []  # a mask and its overlay are written together: neither
    report.mkdir()
    old = {"report.html": "the old page", "per_image.csv": "the old rows"}
    for name, text in old.items():
        (report / name).write_text(text)
    full_disk(lambda path, data: path.endswith("report.html"))
    for argv in (["evaluate", "--checkpoint", str(run / "best.pt"), *TINY[:2], "--limit", "4"],
                 ["predict", "--checkpoint", str(run / "best.pt"), "--input", samples, "--output", str(out)]):
        assert main([*argv, "--report", str(report)]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line == f"minunet {argv[0]}: error: {report / 'report.html'}: No space left on device"
        assert {p.name: p.read_text() for p in report.iterdir()} == old  # both as they were, and nothing else


def test_a_kill_between_last_pt_and_history_csv_is_repaired_by_resume(tmp_path, monkeypatch, capsys):
    from minunet.cli import rundir
    write_history = rundir.write_history

    def interrupted_at_epoch_2(history, path):
        if len(history) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or a kill) right after last.pt of epoch 2 was written
        write_history(history, path)

    out = tmp_path / "run"
    monkeypatch.setattr(rundir, "write_history", interrupted_at_epoch_2)
    assert main(["train", *TINY, "--limit", "16", "--epochs", "2", "--out", str(out)]) == 130
    monkeypatch.undo()
    assert one_error_line(capsys.readouterr().err) == "minunet train: interrupted"
    assert load_checkpoint(str(out / "last.pt")).epoch == 2
    assert len((out / "history.csv").read_text().splitlines()) == 2  # header and epoch 1 only

    assert main(["train", "--resume", str(out / "last.pt")]) == 0  # nothing left to train
    rows = (out / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["epoch", "1", "2"]


# ---------------------------------------------------------------------------------------------------------
# 3. Checkpoints: code hidden in one never runs; a truncated file or another model's weights is one line

class RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def malicious_checkpoint(path, marker, run):
    """A real checkpoint of `run` with a code-running object hidden beside its weights."""
    state = torch.load(run / "best.pt", weights_only=True)  # the file's own dict
    state["note"] = RunsCode(marker)
    torch.save(state, path)


def test_a_malicious_checkpoint_is_refused_and_its_code_never_runs(tmp_path, run, capsys):
    evil, marker = tmp_path / "evil.pt", tmp_path / "code-ran"
    malicious_checkpoint(evil, marker, run)
    torch.load(evil, weights_only=False)  # the file really is dangerous to a plain torch.load
    assert marker.exists()
    marker.unlink()

    for argv in (["evaluate", "--checkpoint", str(evil), "--data", "synthetic", "--limit", "4"],
                 ["predict", "--checkpoint", str(evil), "--input", str(tmp_path), "--output", str(tmp_path / "p")],
                 ["train", "--resume", str(evil)]):
        assert main(argv) == 2
        line = one_error_line(capsys.readouterr().err)
        assert f"refusing {evil}: it holds pickled Python objects that could run code" in line, line
        assert not marker.exists(), f"{argv[0]} ran the checkpoint's code"
    assert not (tmp_path / "p").exists()


@pytest.mark.slow  # over 2 s
def test_a_malicious_checkpoint_through_the_real_command(tmp_path, run):
    evil, marker = tmp_path / "evil.pt", tmp_path / "code-ran"
    malicious_checkpoint(evil, marker, run)
    code, out, err = run_minunet("evaluate", "--checkpoint", str(evil), "--data", "synthetic")
    assert code == 2 and out == ""
    assert one_error_line(err).startswith(f"minunet evaluate: error: refusing {evil}")
    assert not marker.exists()


def test_a_malicious_file_in_the_torch_hub_cache_is_refused_too(tmp_path, capsys):
    """--encoder-weights imagenet loads torchvision's cached file: it is read with weights_only=True as well."""
    from minunet.models.resunet import IMAGENET_WEIGHTS_FILE
    marker = tmp_path / "code-ran"
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({"conv1.weight": RunsCode(marker)}, tmp_path / "hub" / "checkpoints" / IMAGENET_WEIGHTS_FILE)
    hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        code = main(["train", *TINY, "--model", "resunet34", "--encoder-weights", "imagenet", "--out",
                     str(tmp_path / "r")])
    finally:
        torch.hub.set_dir(hub)
    assert code == 2
    assert one_error_line(capsys.readouterr().err).startswith("minunet train: error: cannot load the encoder weights")
    assert not marker.exists(), "the cached file's code ran"


def broken_checkpoints(folder, run):
    """{case: (path, words the error line must hold)} for checkpoints that cannot be used."""
    good = (run / "best.pt").read_bytes()
    state = torch.load(run / "best.pt", weights_only=True)  # the file's own dict
    cases = {}

    def add(name, words, data=None, obj=None):
        path = folder / f"{name}.pt"
        path.write_bytes(data) if data is not None else torch.save(obj, path)
        cases[name] = (path, words)

    add("truncated", "cannot read checkpoint", data=good[:len(good) // 2])
    add("empty", "is empty", data=b"")
    add("text", "cannot read checkpoint", data=b"model: unet\n")
    add("random-dict", "is not a minunet checkpoint", obj={"weights": torch.ones(3), "epoch": 4})
    add("bare-state-dict", "is not a minunet checkpoint", obj=state["state_dict"])
    add("unet-called-resunet34", "does not fit a resunet34 model", obj=dict(state, model="resunet34"))
    add("unknown-model", "is not a minunet checkpoint", obj=dict(state, model="vgg16"))
    add("other-width", "does not fit a unet model",
        obj=dict(state, model_args=dict(state["model_args"], base_channels=8)))
    add("weights-not-a-dict", "does not fit a unet model", obj=dict(state, state_dict=[1, 2, 3]))
    add("no-size", "is not a checkpoint of a minunet training run (it lacks size)",
        obj={k: v for k, v in state.items() if k != "size"})
    return cases


def test_truncated_foreign_and_mismatched_checkpoints_give_one_line(tmp_path, run, capsys):
    for name, (path, words) in broken_checkpoints(tmp_path, run).items():
        for argv in (["evaluate", "--checkpoint", str(path), "--data", "synthetic", "--limit", "4"],
                     ["predict", "--checkpoint", str(path), "--input", str(run), "--output", str(tmp_path / "p")]):
            assert main(argv) == 2, (name, argv[0])
            line = one_error_line(capsys.readouterr().err)
            assert words in line and str(path) in line, (name, line)
    assert not (tmp_path / "p").exists()


def test_resume_needs_a_last_pt(tmp_path, run, capsys):
    assert main(["train", "--resume", str(run / "best.pt")]) == 2
    assert "cannot be resumed (it lacks history, training state)" in one_error_line(capsys.readouterr().err)
    assert main(["train", "--resume", str(tmp_path / "nowhere" / "last.pt")]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    state = torch.load(run / "last.pt", weights_only=True)
    del state["run"]  # a last.pt without its run's flags
    torch.save(state, tmp_path / "last.pt")
    assert main(["train", "--resume", str(tmp_path / "last.pt")]) == 2
    assert "cannot be resumed" in one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------------------
# 4. Training guards: a non-finite loss stops the run and keeps last.pt; an existing run is not overwritten

def test_an_exploding_learning_rate_stops_with_the_epoch_and_step(tmp_path):
    # the command line refuses --lr above 1 (see the bad-flag table), so the loop is driven directly here
    from minunet.data import make_dataset
    from minunet.device import Runtime
    from minunet.errors import TrainingError
    from minunet.training.loop import fit
    from minunet.models.unet import UNet

    out = tmp_path / "run"
    train_set = make_dataset("synthetic", "train", size=32, augment=True, limit=16)
    val_set = make_dataset("synthetic", "val", size=32, limit=16)
    torch.manual_seed(0)
    with pytest.raises(TrainingError) as err:
        fit(UNet(base_channels=4), train_set, val_set, Recipe(epochs=2, batch_size=4, lr=1e30),
            Runtime("cpu", "fp32"), on_epoch=RunFolder(str(out)), log=None)
    # the library names no flag (the command adds its advice: test_the_user_errors_... below)
    assert re.fullmatch(r"the loss became (nan|inf|-inf) at epoch 1, step [2-4]: training stopped", str(err.value)), \
        str(err.value)
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_a_non_finite_loss_in_epoch_2_keeps_last_pt_of_epoch_1(tmp_path, monkeypatch, capsys):

    class NaNAtStep6(LOSSES[Recipe.loss]):
        """The training loss turns NaN at its 6th call (epoch 2, step 2 of 4); validation is left alone."""
        calls = 0

        def forward(self, logits, target):
            loss = super().forward(logits, target)
            if torch.is_grad_enabled():
                NaNAtStep6.calls += 1
                if NaNAtStep6.calls == 6:
                    before["last.pt"] = digest(out / "last.pt")
                    return loss * float("nan")
            return loss

    out, before = tmp_path / "run", {}
    monkeypatch.setitem(LOSSES, Recipe.loss, NaNAtStep6)  # the loss `minunet train` builds by default
    assert main(["train", *TINY, "--limit", "16", "--epochs", "3", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "the loss became nan at epoch 2, step 2: training stopped, last.pt is kept as it was" in line
    assert digest(out / "last.pt") == before["last.pt"]
    state = load_checkpoint(str(out / "last.pt"))
    assert state.epoch == 1 and all(torch.isfinite(t).all() for t in state.state_dict.values()
                                       if t.is_floating_point())
    assert [r["epoch"] for r in state.history] == [1]


def test_out_at_an_existing_run_is_refused_without_resume_or_overwrite(tmp_path, run, capsys):
    before = snapshot(run)
    assert main(["train", *TINY, "--limit", "16", "--epochs", "1", "--out", str(run)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line == (f"minunet train: error: {run} already holds a run (best.pt, last.pt, history.csv, curves.png): pass "
                    f"--resume {run / 'last.pt'} to continue it, --overwrite to replace it, or another --out")
    assert snapshot(run) == before
    # resuming one run into the folder of another is refused too
    other = tmp_path / "other"
    other.mkdir()
    (other / "last.pt").write_bytes((run / "last.pt").read_bytes())
    (other / "history.csv").write_text("epoch\n")
    assert main(["train", "--resume", str(run / "last.pt"), "--out", str(other)]) == 2
    assert f"{other} already holds a run (last.pt, history.csv)" in one_error_line(capsys.readouterr().err)
    assert snapshot(run) == before and (other / "history.csv").read_text() == "epoch\n"


def test_overwrite_replaces_a_run(tmp_path, run, capsys):
    out = tmp_path / "copy"
    out.mkdir()
    for name in ("best.pt", "last.pt", "history.csv"):
        (out / name).write_bytes((run / name).read_bytes())
    assert main(["train", *TINY, "--limit", "16", "--epochs", "1", "--seed", "9", "--out", str(out),
                 "--overwrite"]) == 0
    state = load_checkpoint(str(out / "last.pt"))
    assert state.epoch == 1 and state.run["seed"] == 9


# ---------------------------------------------------------------------------------------------------------
# 5. torchrun: 2 processes (gloo, CPU) train as one process on the same global batch
#
# The one intended difference: each process normalises its BatchNorm layers over its own share of the batch
# (2 of the 4 images), and DistributedDataParallel keeps rank 0's running statistics. PerProcessBatchNorm
# makes a single process compute exactly that, so it is the reference for the weights; measured on this
# machine, DDP matches it bit for bit, and the tolerance below is there only for float summation order
# elsewhere. Broken variants are 4 orders of magnitude further off (relative weight distance after 2 epochs,
# measured with real torchrun runs broken by a patch; the test below re-checks it with their one-process twins):
#   each process sees all the images (== one process at --batch-size 2): 1.6
#   no gradient averaging (each process keeps its own gradient):         1.0
#   plain single process (BatchNorm over all 4 images):                  1.3
# so the weights are compared at 1e-4, and against the plain single process (the user's view) the train loss
# and val Dice of each epoch agree within 0.01 and 0.03 (measured: 0.0023 and 0.015; all images in each
# process: 0.028 and 0.072).

WEIGHT_TOLERANCE = 1e-4
LOSS_TOLERANCE, DICE_TOLERANCE = 0.01, 0.03


class PerProcessBatchNorm(torch.nn.Module):
    """Run `module` on each process's share of a batch (items r, r + world, ...) separately, as DDP's
    processes do, keeping BatchNorm's running statistics of the first share only (DDP broadcasts rank 0's).
    gradients="own" keeps only the first share's gradient: what a process would do without DDP's averaging."""

    def __init__(self, module, world=2, gradients="averaged"):
        super().__init__()
        self.module, self.world, self.gradients = module, world, gradients

    def forward(self, x):  # (B, 3, S, S) -> (B, 1, S, S)
        if not self.training:
            return self.module(x)
        shares = [self.module(x[0::self.world])]  # (B / world, 1, S, S)
        norms = [m for m in self.module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        kept = [(m.running_mean, m.running_var, m.num_batches_tracked) for m in norms]
        for rank in range(1, self.world):
            for m in norms:  # other processes update copies of the statistics, which DDP then overwrites
                m.running_mean, m.running_var = m.running_mean.clone(), m.running_var.clone()
                m.num_batches_tracked = m.num_batches_tracked.clone()
            share = self.module(x[rank::self.world])
            shares.append(share.detach() if self.gradients == "own" else share)
        for m, (mean, var, n) in zip(norms, kept):
            m.running_mean, m.running_var, m.num_batches_tracked = mean, var, n
        return torch.stack(shares, 1).flatten(0, 1)  # items back in batch order


def relative_distance(state, reference, start):
    """||w - w_ref|| / ||w_ref - w_start|| over the trained parameters (BatchNorm statistics left out)."""
    keys = [k for k in start if "running_" not in k and "num_batches" not in k]
    apart = sum(((state[k].double() - reference[k].double()) ** 2).sum() for k in keys) ** 0.5
    moved = sum(((reference[k].double() - start[k].double()) ** 2).sum() for k in keys) ** 0.5
    return float(apart / moved)


@pytest.mark.slow  # over 2 s
def test_torchrun_with_two_processes_trains_as_one_process_on_the_same_global_batch(tmp_path, monkeypatch):
    from minunet.cli import commands
    from minunet.models.unet import UNet

    flags = [*TINY, "--limit", "16", "--epochs", "2"]
    ddp_out = tmp_path / "ddp"
    torchrun = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "minunet",
         "train", *flags, "--out", str(ddp_out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV)

    # meanwhile, in this process: the references and the broken variants
    assert main(["train", *flags, "--out", str(tmp_path / "single")]) == 0
    assert main(["train", *flags, "--batch-size", "2", "--out", str(tmp_path / "all-images")]) == 0
    new_model = commands.new_model
    for name, gradients in (("per-process-bn", "averaged"), ("own-gradients", "own")):
        monkeypatch.setattr(commands, "new_model", lambda *args: PerProcessBatchNorm(new_model(*args), 2, gradients))
        assert main(["train", *flags, "--out", str(tmp_path / name)]) == 0
    monkeypatch.undo()

    out, err = torchrun.communicate(timeout=300)
    assert torchrun.returncode == 0, err
    assert "Traceback" not in err
    # rank 0 alone prints and writes
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert out.count("best validation Dice") == 1
    assert sorted(os.listdir(ddp_out)) == ["best.pt", "curves.png", "history.csv", "last.pt"]

    torch.manual_seed(0)
    start = UNet(base_channels=4).state_dict()  # the seeded initial weights of every run here
    ddp = load_checkpoint(str(ddp_out / "last.pt"))
    runs = {name: load_checkpoint(str(tmp_path / name / "last.pt"))
            for name in ("per-process-bn", "single", "all-images", "own-gradients")}

    reference = runs["per-process-bn"]
    assert relative_distance(ddp.state_dict, reference.state_dict, start) < WEIGHT_TOLERANCE
    for key in ("running_mean", "running_var"):
        stats = [k for k in start if k.endswith(key)]
        assert all(torch.allclose(ddp.state_dict[k], reference.state_dict[k], rtol=1e-4, atol=1e-6)
                   for k in stats)
    for row, ref in zip(ddp.history, reference.history, strict=True):
        assert abs(row["train_loss"] - ref["train_loss"]) < WEIGHT_TOLERANCE
        assert abs(row["val_dice"] - ref["val_dice"]) < WEIGHT_TOLERANCE
        assert row["lr"] == pytest.approx(ref["lr"])

    # against one plain process (BatchNorm over the whole batch): close, but only as close as BatchNorm allows
    for row, ref in zip(ddp.history, runs["single"].history, strict=True):
        assert abs(row["train_loss"] - ref["train_loss"]) < LOSS_TOLERANCE
        assert abs(row["val_dice"] - ref["val_dice"]) < DICE_TOLERANCE

    # the tolerances have teeth: the broken variants, and even BatchNorm over all 4 images, fall outside
    for name in ("single", "all-images", "own-gradients"):
        assert relative_distance(ddp.state_dict, runs[name].state_dict, start) > 100 * WEIGHT_TOLERANCE
    assert any(abs(row["train_loss"] - ref["train_loss"]) > LOSS_TOLERANCE
               or abs(row["val_dice"] - ref["val_dice"]) > DICE_TOLERANCE
               for row, ref in zip(ddp.history, runs["all-images"].history))


def run_two_processes(argv, timeout=120):
    """main(argv) in 2 forked processes joined by gloo, as torchrun would start them (without re-importing
    torch: fast); their exit codes. Their stdout and stderr go to this process's file descriptors."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pids = []
    for rank in range(2):
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                  MASTER_PORT=str(port))
                code = main(argv)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    codes, deadline = {}, time.monotonic() + timeout
    while len(codes) < 2 and time.monotonic() < deadline:
        for pid in pids:
            done, status = os.waitpid(pid, os.WNOHANG) if pid not in codes else (0, 0)
            if done == pid:
                codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    for pid in pids:
        if pid not in codes:  # hung: kill it, and fail
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert len(codes) == 2, "a process hung"
    return [codes[pid] for pid in pids]


def test_under_ddp_a_non_finite_loss_in_one_process_stops_them_all_cleanly(tmp_path, monkeypatch, capfd):

    class NaNOnRank1(LOSSES[Recipe.loss]):
        """The training loss of process 1 alone turns NaN at its second step."""
        calls = 0

        def forward(self, logits, target):
            loss = super().forward(logits, target)
            if torch.is_grad_enabled() and os.environ.get("RANK") == "1":
                NaNOnRank1.calls += 1
                if NaNOnRank1.calls == 2:
                    return loss * float("nan")
            return loss

    monkeypatch.setitem(LOSSES, Recipe.loss, NaNOnRank1)
    codes = run_two_processes(["train", *TINY, "--limit", "16", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert codes == [2, 2]
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert sorted(err.strip().splitlines()) == [  # each process stops at the same step, with its own line
        "minunet train: error: the loss became nan at epoch 1, step 2: training stopped, last.pt is kept as it "
        "was; try a lower --lr or --precision fp32",
        "minunet train: error: the loss became non-finite in another process at epoch 1, step 2: training "
        "stopped, last.pt is kept as it was; try a lower --lr or --precision fp32"]
    assert not (tmp_path / "run" / "last.pt").exists()


# ---------------------------------------------------------------------------------------------------------
# 6. predict and evaluate on folders skip unreadable images, say so per file and in a summary, score the rest

def challenge_test_folder(root, n=5, size=(40, 30)):
    """The ISIC challenge layout with n test pairs (and one training pair); returns the test ids."""
    from minunet.data import TEST_IMAGES, TEST_MASKS, TRAIN_IMAGES, TRAIN_MASKS, synthetic_lesion
    g = torch.Generator().manual_seed(0)
    ids = []
    for images, masks, first, count in ((TRAIN_IMAGES, TRAIN_MASKS, 0, 1), (TEST_IMAGES, TEST_MASKS, 100, n)):
        (root / images).mkdir(parents=True)
        (root / masks).mkdir()
        for k in range(first, first + count):
            image, mask = synthetic_lesion(max(size), g)
            id_ = f"ISIC_{k:07d}"
            tensor_to_pil(image[:, :size[1], :size[0]]).save(root / images / f"{id_}.png")
            tensor_to_pil(mask[:, :size[1], :size[0]] * 255).save(root / masks / f"{id_}_Segmentation.png")
            ids.append(id_)
    return ids[1:]


@pytest.mark.slow  # over 2 s
def test_predict_skips_unreadable_images_and_writes_the_rest(tmp_path, run, capsys):
    from minunet.data import synthetic_lesion
    images = tmp_path / "images"
    images.mkdir()
    g = torch.Generator().manual_seed(1)
    for name in ("a.png", "b.png"):
        tensor_to_pil(synthetic_lesion(48, g)[0]).save(images / name)
    (images / "text.jpg").write_text("not a jpeg")
    (images / "half.png").write_bytes((images / "a.png").read_bytes()[:200])
    (images / "empty.png").write_bytes(b"")
    (images / "notes.txt").write_text("not an image: not even tried")

    out = tmp_path / "masks"
    code, stdout, err = run_minunet("predict", "--checkpoint", str(run / "best.pt"), "--input", str(images),
                                    "--output", str(out))
    assert code == 0, err
    warnings = err.strip().splitlines()
    assert "Traceback" not in err and len(warnings) == 3
    for name, line in zip(("empty.png", "half.png", "text.jpg"), warnings):  # one line each, in file order
        assert line.startswith(f"skipped: cannot read {images / name}:"), line
    assert stdout.strip() == f"wrote 2 segmentation(s) to {out}; skipped 3 unreadable image(s)"
    assert sorted(os.listdir(out)) == ["a_Segmentation.png", "b_Segmentation.png"]

    for name in ("a.png", "b.png"):  # nothing readable left: exit 2, the warnings, then one error line
        (images / name).write_bytes(b"\x89PNG broken")
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input", str(images), "--output",
                 str(tmp_path / "none")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 6 and all(line.startswith("skipped: cannot read") for line in lines[:5])
    assert lines[5] == f"minunet predict: error: none of the 5 image(s) in {images} could be read"


def test_predict_on_an_empty_folder_or_a_missing_path(tmp_path, run, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input", str(tmp_path / "empty"),
                 "--output", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys.readouterr().err) == \
        f"minunet predict: error: --input {tmp_path / 'empty'} holds no .jpg, .jpeg or .png image"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input", str(tmp_path / "nowhere"),
                 "--output", str(tmp_path / "out")]) == 2
    assert "no such file or folder" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # over 2 s
def test_predict_compile_without_a_cpp_compiler_is_one_line(tmp_path, run, capsys, monkeypatch):
    import torch._dynamo
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", (None, str(tmp_path / "no-such-g++")))
    monkeypatch.setattr(inductor, "fx_graph_cache", False)  # compile anew instead of reusing an earlier run's
    from minunet.data import synthetic_lesion
    tensor_to_pil(synthetic_lesion(48, torch.Generator().manual_seed(1))[0]).save(tmp_path / "a.png")
    torch._dynamo.reset()
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input", str(tmp_path / "a.png"),
                 "--output", str(tmp_path / "out"), "--compile", "--device", "cpu"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("minunet predict: error: torch.compile failed (") and "C++ compiler" in line, line
    assert line.endswith("; predict without compiling"), line
    torch._dynamo.reset()


@pytest.mark.slow  # over 2 s
def test_evaluate_skips_unreadable_pairs_and_scores_the_rest_as_if_they_were_absent(tmp_path, run):
    import json
    import shutil
    from minunet.data import TEST_IMAGES, TEST_MASKS

    root = tmp_path / "isic"
    ids = challenge_test_folder(root, n=5)
    clean = tmp_path / "clean"
    shutil.copytree(root, clean)
    (root / TEST_IMAGES / f"{ids[1]}.png").write_bytes(b"not a png")  # a corrupt image
    mask = root / TEST_MASKS / f"{ids[3]}_Segmentation.png"
    mask.write_bytes(mask.read_bytes()[:60])  # a truncated mask
    for id_ in (ids[1], ids[3]):
        (clean / TEST_IMAGES / f"{id_}.png").unlink()
        (clean / TEST_MASKS / f"{id_}_Segmentation.png").unlink()

    flags = ["evaluate", "--checkpoint", str(run / "best.pt"), "--data", "isic2016", "--split", "test"]
    code, out, err = run_minunet(*flags, "--data-root", str(root), "--json", str(tmp_path / "m.json"))
    assert code == 0, err
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and "Traceback" not in err
    assert warnings[0].startswith(f"skipped: cannot read {root / TEST_IMAGES / ids[1]}.png")
    assert warnings[1].startswith(f"skipped: cannot read {mask}")
    assert out.splitlines()[0] == ("3 images of isic2016 test (2 unreadable skipped), scored at the ground "
                                   "truth's resolution:")
    scores = json.loads((tmp_path / "m.json").read_text())
    assert scores["count"] == 3 and scores["skipped"] == 2

    assert main([*flags, "--data-root", str(clean), "--json", str(tmp_path / "clean.json")]) == 0
    expected = json.loads((tmp_path / "clean.json").read_text())
    assert expected["skipped"] == 0
    assert {k: v for k, v in scores.items() if k != "skipped"} == {k: v for k, v in expected.items()
                                                                   if k != "skipped"}


def test_evaluate_with_no_readable_pair_exits_2(tmp_path, run, capsys):
    from minunet.data import TEST_IMAGES
    root = tmp_path / "isic"
    ids = challenge_test_folder(root, n=2)
    for id_ in ids:
        (root / TEST_IMAGES / f"{id_}.png").write_bytes(b"")
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", "isic2016", "--split", "test",
                 "--data-root", str(root)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"minunet evaluate: error: none of the 2 images of split test in "
                               f"{root / TEST_IMAGES} could be read: cannot read")
    assert len(lines) == 1


def test_training_still_refuses_an_unreadable_image(tmp_path, capsys):
    """Training on quietly fewer images than asked would be a different run: it stops and names the file."""
    from minunet.data import TRAIN_IMAGES
    root = tmp_path / "isic"
    challenge_test_folder(root, n=1)
    (root / TRAIN_IMAGES / "ISIC_0000000.png").write_bytes(b"junk")
    assert main(["train", *TINY, "--data", "isic2016", "--data-root", str(root), "--out", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"minunet train: error: cannot read {root / TRAIN_IMAGES / 'ISIC_0000000.png'}")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------------------
# Bad flags and paths on the command line: one line, exit 2, nothing written

def exit_code_and_stderr(argv, capsys):
    """main(argv) in this process: (exit code, stderr), also when argparse exits."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("extra, words", [
    (["--lr", "-1"], "argument --lr: -1 must be a number above 0"),
    (["--lr", "nan"], "argument --lr: nan must be a number above 0"),
    (["--lr", "fast"], "argument --lr: 'fast' is not a number"),
    (["--lr", "1e9"], "argument --lr: 1e9 must be a number above 0 and at most 1, such as 1e-3"),
    (["--size", "8"], "argument --size: 8 is too small: the U-Nets need images of at least 32 x 32"),
    (["--epochs", "1.5"], "argument --epochs: '1.5' is not a whole number"),
    (["--limit", "0"], "argument --limit: 0 must be at least 1"),
    (["--batch-size", "32"], "16 training images do not fill one batch of 32: pass --batch-size 16 or less"),
    (["--device", "cuda"], "a CUDA GPU was asked for, but PyTorch sees none: pass --device cpu"),
])
def test_bad_training_flags(tmp_path, capsys, extra, words):
    if extra == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, err = exit_code_and_stderr(["train", *TINY, "--limit", "16", "--epochs", "1", "--out",
                                      str(tmp_path / "r"), *extra], capsys)
    assert code == 2
    assert words in one_error_line(err)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # over 2 s
def test_encoder_weights_that_are_not_a_state_dict_of_tensors(tmp_path, capsys):
    import torchvision
    sd = torchvision.models.resnet34().state_dict()
    for name, content, words in (("list.pth", list(sd.values()), "not a torchvision resnet34 state dict: a list"),
                                 ("str.pth", dict(sd, **{"bn1.weight": "x"}), "bn1.weight str (expected (64,))")):
        torch.save(content, tmp_path / name)
        code, err = exit_code_and_stderr(["train", *TINY, "--model", "resunet34", "--encoder-weights",
                                          str(tmp_path / name), "--out", str(tmp_path / "r")], capsys)
        assert code == 2 and one_error_line(err).startswith("minunet train: error: cannot load the encoder weights")
        assert words in err
    assert not (tmp_path / "r").exists()


def test_output_paths_that_are_files(tmp_path, run, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    code, err = exit_code_and_stderr(["train", *TINY, "--out", str(a_file)], capsys)
    assert code == 2 and one_error_line(err) == \
        f"minunet train: error: --out {a_file} is a file, not a folder: pass a folder (it is made if missing)"
    code, err = exit_code_and_stderr(["predict", "--checkpoint", str(run / "best.pt"), "--input", str(run),
                                      "--output", str(a_file)], capsys)
    assert code == 2 and f"--output {a_file} is a file, not a folder" in one_error_line(err)
    code, err = exit_code_and_stderr(["train", *TINY, "--model", "resunet34", "--encoder-weights", str(a_file),
                                      "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and f"cannot load the encoder weights from {a_file}" in one_error_line(err)
    code, err = exit_code_and_stderr(["train", *TINY, "--limit", "16", "--out", str(a_file / "run")], capsys)
    assert code == 2 and one_error_line(err) == (f"minunet train: error: --out {a_file / 'run'}: {a_file} is a file, "
                                                 f"not a folder: pass a folder (it is made if missing)")
    assert a_file.read_text() == "keep me" and not (tmp_path / "r").exists()
