#!/usr/bin/env bash
# One prepared GPU check, sized to finish within 8 minutes on one GPU: first bench/feed.py (the model's training
# step alone beside the loop's images/s at 128 and 256 px, and their ratio: does the input pipeline keep the
# GPU busy?), then train the ResNet-34 U-Net on the ISIC 2016 challenge folders at 256 px with mixed precision
# (--precision auto) and record the card's name, images/s, epochs, wall time and validation Dice as a section
# of bench/RESULTS.md.
#
#   bench/gpu.sh [DATA_ROOT] [EPOCHS]        # defaults: ../shared/data/isic2016, 40 epochs
#
# The section is appended to bench/RESULTS.md and, when $OUT is set (the device tool's output folder), also
# written to $OUT/gpu_section.md (with history.csv) so it can be copied back. The shared data does not travel to a lent
# device machine by itself: copy it into an ignored folder of the checkout (e.g. .data/, listed in
# .git/info/exclude), carry that folder, and pass it as DATA_ROOT. Needs torch, torchvision, pillow, tqdm
# and matplotlib; minunet is used from this checkout (no install, so no network is needed).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${1:-../shared/data/isic2016}
EPOCHS=${2:-40}
RUN=bench/out/gpu_resunet34_256
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench/gpu.sh: no CUDA GPU here')"
mkdir -p "$RUN"
python3 bench/feed.py --data-root "$DATA_ROOT" --sizes 128 256 --epochs 4 | tee "$RUN/feed.md"
start=$(date +%s)
python3 -m minunet train --model resunet34 --encoder-weights none --data isic2016 --data-root "$DATA_ROOT" \
  --size 256 --epochs "$EPOCHS" --batch-size 16 --device cuda --precision auto --out "$RUN" --overwrite
wall=$(( $(date +%s) - start ))
python3 - "$RUN/history.csv" "$wall" "$DATA_ROOT" "$EPOCHS" > "$RUN/gpu_section.md" <<'PY'
import csv, statistics, sys, torch
rows = list(csv.DictReader(open(sys.argv[1])))
best = max(rows, key=lambda r: float(r["val_dice"]))
rate = statistics.median(float(r["train_images_per_s"]) for r in rows[1:] or rows)  # epoch 1 includes warm-up
print(f"\n### GPU: {torch.cuda.get_device_name()} (torch {torch.__version__})\n")
print(f"Command: `bench/gpu.sh {sys.argv[3]} {sys.argv[4]}` (resunet34, no pretrained weights, 256 px, batch 16, "
      f"--precision auto = {'bf16' if torch.cuda.is_bf16_supported() else 'fp16'} autocast)\n")
print(f"| epochs | wall time | training images/s (median epoch) | best val Dice (epoch) | its val Jaccard |")
print(f"| --- | --- | --- | --- | --- |")
print(f"| {len(rows)} | {int(sys.argv[2])} s | {rate:.0f} | {float(best['val_dice']):.4f} ({best['epoch']}) "
      f"| {float(best['val_jaccard']):.4f} |")
PY
printf '\nInput pipeline (bench/feed.py):\n\n' >> "$RUN/gpu_section.md"
cat "$RUN/feed.md" >> "$RUN/gpu_section.md"
cat "$RUN/gpu_section.md" | tee -a bench/RESULTS.md
[ -n "${OUT:-}" ] && cp "$RUN/gpu_section.md" "$RUN/history.csv" "$OUT/" || true
