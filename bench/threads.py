"""A tiny training on a machine shared with another job: images/s with torch's default threads and with fewer.

The tiny run is the robustness tests' (a 4-channel U-Net at 32 x 32, batch 4, fp32, forward + backward + Adam
on synthetic lesions). Each measurement runs in its own process, alone or beside a busy process:
  spin    one pure-Python busy loop (one core taken)
  torch   another copy of the tiny training with torch's default threads (a second job as busy as this one)
and with threads = torch's default (one a core), the default with OpenMP's waiting threads asleep
(OMP_WAIT_POLICY=PASSIVE: they do not spin), 1, and what `minunet.device.choose_threads()` picks at start-up.
Prints the CPU (model, cores, bf16/AMX flags), torch's version and thread pool, then one row per measurement
with the machine's runnable tasks and 1-minute load average as it began (other users' jobs count too).

    python bench/threads.py               # about 2 minutes on 2 cores (longer where threads wait)
    python bench/threads.py --seconds 1   # a quick look
"""
import argparse
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def cpu_description():
    """'model, N cores, flags' of this machine's CPU (the flags that decide bf16 speed)."""
    model, flags = platform.processor() or "?", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512f", "avx2")))
    return f"{model}, {os.cpu_count()} cores, flags {' '.join(shown) or 'none of avx2/avx512/amx'}"


def train_tiny(threads, seconds):
    """images/s of the tiny training with `threads` (None: torch's default), over `seconds` after a warm-up."""
    import torch

    from minunet import UNet
    from minunet.losses import BCEDiceLoss
    from minunet.data.synthetic import synthetic_split

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UNet(3, 1, base_channels=4).to(memory_format=torch.channels_last)
    optimizer, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), BCEDiceLoss()
    images, masks, _ = synthetic_split("train", 32, 4)  # (4, 3, 32, 32) uint8, (4, 1, 32, 32) uint8
    x = (images.float() / 255).contiguous(memory_format=torch.channels_last)
    y = masks.float()

    def step():
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up: allocator, oneDNN primitives
        step()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 2:
        step()
        steps += 1
    return steps * 4 / (time.perf_counter() - t0), torch.get_num_threads()


def busy(kind):
    """Start a busy process of `kind` ("spin" or "torch"); the Popen (None for "none")."""
    if kind == "none":
        return None
    code = "while True: pass" if kind == "spin" else \
        f"import sys; sys.path.insert(0, {HERE!r}); import threads; threads.train_tiny(None, 1e9)"
    return subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(threads, seconds):
    """Run the tiny training in a fresh process; (images/s, threads used)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    if threads == "passive":
        threads, env["OMP_WAIT_POLICY"] = "default", "PASSIVE"
    out = subprocess.run([sys.executable, __file__, "--worker", threads, "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True, env=env).stdout
    rate, used = out.split()
    return float(rate), int(used)


def runnable():
    """The machine's runnable tasks now (procs_running in /proc/stat, this process included), or "?"."""
    try:
        with open("/proc/stat") as f:
            return next(line.split()[1] for line in f if line.startswith("procs_running "))
    except (OSError, StopIteration):
        return "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds of each measurement")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # "default", "chosen" or a number
    args = parser.parse_args()
    if args.worker:
        threads = {"default": None}.get(args.worker, args.worker)
        if threads == "chosen":
            from minunet.device import choose_threads
            threads = choose_threads()
        print(*train_tiny(int(threads) if threads else None, args.seconds))
        return
    import torch

    print(f"CPU: {cpu_description()}")
    print(f"torch {torch.__version__}, default threads {torch.get_num_threads()}, load average before "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'beside':<8} {'threads asked':<14} {'threads':>7} {'images/s':>9} {'runnable':>8} {'load':>5}")
    for kind in ("none", "spin", "torch"):
        other = busy(kind)
        try:
            time.sleep(1.0 if other else 0)  # the busy process up to speed (and, for torch, imported)
            if kind == "torch":
                time.sleep(2.0)
            for threads in ("default", "passive", "1", "chosen"):
                tasks, load = runnable(), os.getloadavg()[0]
                rate, used = measure(threads, args.seconds)
                print(f"{kind:<8} {threads:<14} {used:>7} {rate:>9.1f} {tasks:>8} {load:>5.2f}", flush=True)
        finally:
            if other:
                other.kill()
                other.wait()


if __name__ == "__main__":
    main()
