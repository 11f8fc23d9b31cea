"""Where a model runs and in what precision: the one choice every command makes first.

    device, amp_dtype = choose_device("auto", "auto")

device "auto" is the CUDA GPU when PyTorch sees one, else the CPU. precision "auto" is bf16 autocast on a
CUDA GPU that supports it (else fp16), bf16 on a CPU that computes bfloat16 in hardware (AMX or AVX-512
BF16; elsewhere bf16 is emulated and slower than fp32), and plain fp32 on other CPUs. amp_dtype is the dtype
to give torch.autocast, or None for fp32. `Runtime` groups these choices with the others that decide where
and how fast a model runs, but not what it learns or predicts (beyond rounding).
"""
import os
from dataclasses import dataclass

import torch

from .errors import SettingError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """Where and how fast a model runs: --device, --precision, --workers, --batch-size of evaluate and predict
    (training's batch size belongs to the recipe), and predict's --compile."""
    device: str = "auto"
    precision: str = "auto"
    workers: object = None  # DataLoader worker processes; None: default_workers(device)
    batch_size: int = 16  # images per forward pass when evaluating or predicting
    compile: bool = False  # predict: compile the model with torch.compile first (minunet.inference)

    def choose(self):
        """(torch.device, autocast dtype or None) of this runtime's device and precision (choose_device)."""
        return choose_device(self.device, self.precision)


def cpu_has_native_bf16():
    """Whether this CPU computes bfloat16 in hardware (AMX or AVX-512 BF16); elsewhere bf16 is emulated, slow."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_device(device="auto", precision="auto"):
    """(torch.device, autocast dtype or None) for a --device and a --precision (see the module docstring)."""
    if isinstance(device, str):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise SettingError("--device cuda was asked for, but PyTorch sees no CUDA GPU: use --device cpu")
        device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
    return device, PRECISIONS[precision]


def default_workers(device):
    """DataLoader worker processes for a device: on a GPU, up to 8 (one core left for the training process),
    so that decoding and augmentation keep up with the model; on a CPU, 0 (the model's own threads use
    every core, and workers would take them away)."""
    if device.type != "cuda":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))
