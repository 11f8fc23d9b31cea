"""The quick check's time in units of this CPU's own speed: the tutorials' quick runs (`pytest
tests/test_tutorials.py -k runs_quick`, all fourteen, two at a time) timed beside a fixed reference workload, so
that its bound holds on any CPU as a ratio, not as seconds that hold on one kind only.

The reference step: one fp32 training step (forward, backward, Adam) of minunet's ResNet34UNet at 32 px, batch
32, one thread, as bench/step_profile.py takes apart (07's quick run trains at that size); its median over
--steps steps after one warm-up step, taken before and after the check (the machine's speed can drift: both
are printed, the ratio uses their mean). Run it with nothing else running.

    python bench/quick_check.py                 # minutes: the check, and 2 x 15 reference steps
    python bench/quick_check.py --skip-check    # the reference step alone: seconds
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from minunet.models import build_model  # noqa: E402
from threads import cpu_description  # noqa: E402  (bench/threads.py: model, cores, vector flags)


def reference_step_seconds(steps):
    """The median seconds of one fp32 training step of ResNet34UNet at 32 px, batch 32, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("resunet34", encoder_weights=None)
    x, y = torch.randn(32, 3, 32, 32), (torch.rand(32, 1, 32, 32) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="reference steps timed each time")
    parser.add_argument("--skip-check", action="store_true", help="time the reference step alone")
    args = parser.parse_args()
    print(f"{cpu_description()}, capability {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}")
    before = reference_step_seconds(args.steps)
    print(f"reference step: {before:.3f} s", flush=True)
    if args.skip_check:
        return
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_tutorials.py", "-k", "runs_quick"], cwd=os.path.dirname(HERE),
                            capture_output=True, text=True)
    check = time.perf_counter() - t0
    print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-400:])
    after = reference_step_seconds(args.steps)
    step = (before + after) / 2
    print(f"reference step after: {after:.3f} s")
    print(f"quick check: {check:.1f} s = {check / step:.0f} reference steps (exit {result.returncode})")


if __name__ == "__main__":
    main()
