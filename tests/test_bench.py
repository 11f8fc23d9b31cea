"""The benchmarks are scripts, not tests: these runs in their tiny modes keep them working."""
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench")
pytest.importorskip("segmentation_models_pytorch")


def run(*argv):
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_speed_runs_in_tiny_mode():
    out = run(os.path.join(BENCH, "speed.py"), "--tiny")
    for line in ("smp.Unet(resnet34)", "minunet.ResNet34UNet", "plain U-Net", "minunet.UNet", "peak memory",
                 "+ channels_last", "BatchNorm folded", "minunet fit (--precision auto)", "minunet predict",
                 "data pipeline", "peak tensor memory"):
        assert line in out, line
    assert out.count(" x") >= 8  # every comparison printed its ratio
    tensor_memory = [line for line in out.split("peak tensor memory")[1].splitlines() if line.endswith(" MiB")]
    assert len(tensor_memory) == 4  # both pairs, training and inference


def test_accuracy_runs_in_tiny_mode(tmp_path):
    history = tmp_path / "history.csv"
    out = run(os.path.join(BENCH, "accuracy.py"), "--data", "synthetic", "--epochs", "1", "--limit", "16",
              "--size", "64", "--batch-size", "4", "--history", str(history))
    assert "best validation Dice" in out
    assert history.read_text().startswith("epoch,lr,train_loss")
