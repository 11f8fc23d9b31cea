"""Ctrl-C swept over the first seconds of `python -m minunet train`: how each interrupted run ended.

Starts a tiny synthetic run (tests/test_robustness.py's TINY flags, 50 epochs: it never ends by itself),
sends SIGINT at evenly spaced moments between --start and --end seconds after Python's own start-up, and
counts (exit status, stderr) pairs. The right end is exit 130 with `minunet train: interrupted` alone on
stderr; -2 is a process ended by SIGINT itself. Nothing else may run beside it: the moments are wall-clock.

    python bench/ctrl_c.py --runs 60 --start 1.5 --end 4.5
    python bench/ctrl_c.py --runs 60 --start 1.5 --end 4.5 --source /tmp/old   # another checkout's minunet
"""
import argparse
import collections
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

from threads import cpu_description  # bench/threads.py: model, cores, vector flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--data", "synthetic", "--model", "unet", "--base-channels", "4", "--size", "32", "--batch-size", "4",
        "--device", "cpu", "--precision", "fp32", "--limit", "48", "--epochs", "50"]


def interrupted(source, moment, env):
    """(exit status, stderr) of a run given SIGINT `moment` seconds after it starts."""
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.Popen([sys.executable, "-m", "minunet", "train", *TINY, "--out", out], cwd=source, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as at a terminal,
        time.sleep(moment)  # also when this script runs with SIGINT ignored (a background job, nohup)
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=300)[1]
        return p.returncode, err


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--start", type=float, default=1.5, help="seconds after Python's start-up (default 1.5)")
    parser.add_argument("--end", type=float, default=4.5)
    parser.add_argument("--source", default=ROOT, help="the checkout whose minunet runs (default: this one)")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=args.source)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    python_start = time.perf_counter() - t0
    print(f"{cpu_description()}; Python {platform.python_version()}; minunet from {args.source}")
    ends = collections.Counter()
    for k in range(args.runs):
        moment = args.start + (args.end - args.start) * k / max(1, args.runs - 1)
        code, err = interrupted(args.source, python_start + moment, env)
        right = code == 130 and err == "minunet train: interrupted\n"
        ends["exit 130, the one line" if right else f"exit {code}, stderr {err[-80:]!r}"] += 1
        if not right:
            print(f"  at {moment:.2f} s: exit {code}, stderr {err[-200:]!r}", flush=True)
    for end, n in ends.most_common():
        print(f"{n:4d} of {args.runs}: {end}")


if __name__ == "__main__":
    main()
