"""The training loop's speed on this machine, this checkout against an older commit, taken in one run; and
whether the two compute the same numbers.

Each round trains the same small run with `python -m minunet train` in this checkout and in a worktree of
--old, one after the other (so both see the same machine load); the images/s of each epoch after the first
come from history.csv. Prints the CPU, each round's figures, the median ratio new / old, and whether every
number both history.csv files record (losses, Dice, learning rate: every column but times and speeds) is
equal, epoch by epoch (a CPU run repeats exactly, so a recipe left as it was gives equal numbers).

    python bench/versions.py --old fc16a25                   # minunet 0.1.0's loop against today's
    python bench/versions.py --old 1bd0121 --data isic2016 --data-root ../shared/data/isic2016 --rounds 1
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
    """(images/s of each epoch after the first, history.csv's rows) of one `minunet train` run in `checkout`."""
    env = dict(os.environ, PYTHONPATH=checkout)
    data_root = ["--data-root", os.path.abspath(args.data_root)] if args.data_root else []  # cwd is the checkout
    done = subprocess.run([sys.executable, "-m", "minunet", "train", "--model", args.model, "--base-channels",
                           str(args.base_channels), "--data", args.data, "--size", str(args.size), "--limit",
                           str(args.limit), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                           "--device", "cpu", "--out", out, "--overwrite", *data_root],
                          cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"minunet train in {checkout} failed: {done.stderr.strip()}")
    rows = list(csv.DictReader(open(os.path.join(out, "history.csv"))))
    return [float(row["train_images_per_s"]) for row in rows[1:]], rows


TIMES = ("seconds", "images_per_s", "time")  # columns that measure speed, not what was computed


def same_numbers(old_rows, new_rows):
    """(True, which columns were compared) when every column both histories record, but times and speeds, is
    equal in every epoch; else (False, the first difference)."""
    shared = [c for c in old_rows[0] if c in new_rows[0] and not any(t in c for t in TIMES)]
    if len(old_rows) != len(new_rows):
        return False, f"{len(old_rows)} epochs against {len(new_rows)}"
    for epoch, (a, b) in enumerate(zip(old_rows, new_rows), 1):
        for c in shared:
            if a[c] != b[c]:
                return False, f"epoch {epoch}, {c}: old {a[c]}, new {b[c]}"
    return True, f"{len(shared)} columns ({', '.join(shared)}) equal in all {len(new_rows)} epochs"


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
    parser.add_argument("--data", default="synthetic", help="minunet train's --data (e.g. isic2016)")
    parser.add_argument("--data-root", help="minunet train's --data-root")
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
            rates, rows = {"old": [], "new": []}, {}
            for r in range(args.rounds):
                for name, checkout in (("old", old), ("new", HERE)):
                    got, rows[name] = train(checkout, os.path.join(tmp, f"{name}{r}"), args)
                    rates[name] += got
                    print(f"round {r + 1} {name}: " + ", ".join(f"{v:.1f}" for v in got) + " images/s", flush=True)
                same, how = same_numbers(rows["old"], rows["new"])
                print(f"round {r + 1}: {'the same numbers' if same else 'DIFFERENT numbers'}: {how}", flush=True)
        finally:
            subprocess.run(["git", "-C", HERE, "worktree", "remove", "--force", old], capture_output=True)
    new, then = statistics.median(rates["new"]), statistics.median(rates["old"])
    print(f"median images/s: old {then:.1f}, new {new:.1f}, new / old x{new / then:.3f}")


if __name__ == "__main__":
    main()
