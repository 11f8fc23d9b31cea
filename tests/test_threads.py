"""Issue 23: on a CPU shared with another job, torch takes only the cores no other process keeps busy
(minunet.device.choose_threads); bench/threads.py measures why (bench/RESULTS.md)."""
import os
import subprocess
import sys
import time

import pytest
import torch

from minunet import device


def test_a_busy_process_is_seen_and_leaves_its_core_alone():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # running
        assert device.busy_cores() >= 1  # the spinning process is runnable in every sample
    finally:
        spin.kill()
        spin.wait()


def test_threads_are_the_free_cores_at_least_one(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(device, "busy_cores", lambda: 0)
    before = torch.get_num_threads()
    assert device.choose_threads() == min(cores, before)
    torch.set_num_threads(1)  # a program (or a test) that chose fewer threads keeps them
    try:
        assert device.choose_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setattr(device, "busy_cores", lambda: cores + 3)
    assert device.choose_threads() == 1
    monkeypatch.setattr(device, "busy_cores", lambda: 1)
    assert device.choose_threads() == max(1, min(before, cores - 1))
    try:
        assert device.use_free_cores() == torch.get_num_threads() == max(1, min(before, cores - 1))
    finally:
        torch.set_num_threads(before)


def test_the_command_takes_the_free_cores(monkeypatch):
    from minunet.cli import entry
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "busy_cores", lambda: 99)  # every core busy: one thread
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit):
            entry.main(["train", "--epochs", "0"])  # a bad flag, after the start-up
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_omp_num_threads_set_by_the_user_decides(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(device, "busy_cores", lambda: 0)
    assert device.choose_threads() == torch.get_num_threads()
