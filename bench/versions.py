"""The training loop's speed on this machine, this checkout against an older commit, taken in one run.

Each round trains the same small run with `python -m minunet train` in this checkout and in a worktree of
--old, one after the other (so both see the same machine load); the images/s of each epoch after the first
come from history.csv. Prints the CPU, each round's figures and the median ratio new / old.

    python bench/versions.py --old fc16a25                   # minunet 0.1.0's loop against today's
    python bench/versions.py --old HEAD~1 --rounds 1 --epochs 2 --limit 16 --size 32 --base-channels 4   # smoke
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(checkout, out, args):
    """images/s of each epoch after the first of one `minunet train` run in `checkout`."""
    env = dict(os.environ, PYTHONPATH=checkout)
    subprocess.run([sys.executable, "-m", "minunet", "train", "--model", args.model, "--base-channels",
                    str(args.base_channels), "--data", "synthetic", "--size", str(args.size), "--limit",
                    str(args.limit), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--device",
                    "cpu", "--out", out, "--overwrite"], cwd=checkout, env=env, check=True, capture_output=True)
    rows = list(csv.DictReader(open(os.path.join(out, "history.csv"))))
    return [float(row["train_images_per_s"]) for row in rows[1:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the older commit (e.g. fc16a25, minunet 0.1.0)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="unet")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    native = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    print(f"{cpu}, {os.cpu_count()} cores, native bf16: {' '.join(native) or 'no'}; {vars(args)}")
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "old")
        subprocess.run(["git", "-C", HERE, "worktree", "add", "--detach", old, args.old], check=True,
                       capture_output=True)
        try:
            rates = {"old": [], "new": []}
            for r in range(args.rounds):
                for name, checkout in (("old", old), ("new", HERE)):
                    got = train(checkout, os.path.join(tmp, f"{name}{r}"), args)
                    rates[name] += got
                    print(f"round {r + 1} {name}: " + ", ".join(f"{v:.1f}" for v in got) + " images/s", flush=True)
        finally:
            subprocess.run(["git", "-C", HERE, "worktree", "remove", "--force", old], capture_output=True)
    new, then = statistics.median(rates["new"]), statistics.median(rates["old"])
    print(f"median images/s: old {then:.1f}, new {new:.1f}, new / old x{new / then:.3f}")


if __name__ == "__main__":
    main()
