"""Where a model runs and in what precision: the one choice every command makes first.

    device, amp_dtype = choose_device("auto", "auto")

device "auto" is the CUDA GPU when PyTorch sees one, else the CPU. precision "auto" is bf16 autocast on a
CUDA GPU that supports it (else fp16), bf16 on a CPU that computes bfloat16 in hardware (AMX or AVX-512
BF16; elsewhere bf16 is emulated and slower than fp32), and plain fp32 on other CPUs. amp_dtype is the dtype
to give torch.autocast, or None for fp32. `Runtime` groups these choices with the others that decide where
and how fast a model runs, but not what it learns or predicts (beyond rounding).

On a CPU shared with other jobs, `use_free_cores()` at start-up gives torch one thread per core that no other
process keeps busy: torch's default, a thread per core, waits at every operation for the thread whose core
another job holds (bench/RESULTS.md, "Threads on a shared machine").
"""
import os
import time
from dataclasses import dataclass

import torch

from .errors import Fix, SettingError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """Where and how fast a model runs: the device, the precision, DataLoader workers, the batch size of
    evaluation and prediction (training's belongs to the recipe), and compiling the model for prediction."""
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
    """(torch.device, autocast dtype or None) for a device and a precision (see the module docstring)."""
    if isinstance(device, str):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise SettingError("a CUDA GPU was asked for, but PyTorch sees none", fix=Fix(device="cpu"))
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


def busy_cores(samples=5, interval=0.01):
    """How many cores other processes keep busy now: the machine's runnable tasks (procs_running in
    /proc/stat; the fewest of a few samples, so that a passing shell does not count) less this process's
    own. 0 where /proc/stat cannot be read (not Linux)."""
    counts = []
    for sample in range(samples):
        try:
            with open("/proc/stat") as f:
                counts.append(next(int(line.split()[1]) for line in f if line.startswith("procs_running ")))
        except (OSError, StopIteration, ValueError, IndexError):
            return 0
        if sample < samples - 1:
            time.sleep(interval)
    return max(0, min(counts) - 1)


def choose_threads():
    """torch's threads for a run here: the cores this process may use (its affinity) less those other
    processes keep busy now, at least 1, and never more than torch has already (a program, or a test, that
    chose fewer keeps them). Where OMP_NUM_THREADS is set, torch's own count: the user chose."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    return max(1, min(torch.get_num_threads(), usable_cores() - busy_cores()))


def usable_cores():
    """The cores this process may run on (its affinity, where the system says it; else the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def use_free_cores():
    """Set torch's threads to choose_threads() (once, as a command starts: minunet.cli.entry); the number."""
    threads = choose_threads()
    torch.set_num_threads(threads)
    return threads
