"""Accuracy reference: segmentation_models_pytorch's Unet("resnet34") trained with minunet's own recipe.

minunet's ResNet34UNet is the same network as smp's Unet("resnet34", classes=1). This script trains smp's model
through minunet.train.fit (same data, split, augmentations, loss, optimizer, schedule, epochs, validation),
so its validation Dice sits beside `minunet train --model resunet34`'s as a like-for-like comparison.

    python bench/accuracy.py --data-root ../shared/data/isic2016            # 20 epochs at 128 px
    python bench/accuracy.py --data synthetic --epochs 1 --limit 32         # a smoke run
"""
import argparse
import time

import segmentation_models_pytorch as smp
import torch

from minunet.data import make_dataset
from minunet.rundir import write_history
from minunet.train import fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="isic2016", choices=["isic2016", "synthetic"])
    parser.add_argument("--data-root", default="../shared/data/isic2016")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--history", default="bench/out/smp_resunet34_history.csv")
    args = parser.parse_args()

    train_set = make_dataset(args.data, "train", args.data_root, args.size, augment=True, seed=args.seed,
                             limit=args.limit)
    val_set = make_dataset(args.data, "val", args.data_root, args.size, limit=args.limit)
    torch.manual_seed(args.seed)
    model = smp.Unet("resnet34", encoder_weights=None, classes=1)
    start = time.perf_counter()
    history = fit(model, train_set, val_set, out_dir=None, epochs=args.epochs, batch_size=args.batch_size,
                  lr=args.lr, precision=args.precision, seed=args.seed)
    write_history(history, args.history)
    best = max(history, key=lambda row: row["val_dice"])
    print(f"smp Unet('resnet34'): best validation Dice {best['val_dice']:.4f} (Jaccard "
          f"{best['val_jaccard']:.4f}) at epoch {best['epoch']}, {time.perf_counter() - start:.0f} s; "
          f"history in {args.history}")


if __name__ == "__main__":
    main()
