"""Does the loop keep the model busy? images/s of the model's training step alone beside minunet's loop (fit).

For each size: the ResNet34UNet's training step on one fixed batch already on the device (forward, BCE+Dice,
backward, Adam; channels_last; the autocast of --precision auto), then `fit` for a few epochs on the real
images (DataLoader workers by default: minunet.device.default_workers), whose history reports the images/s of
each epoch. The ratio loop / model-only says how much of the device the input pipeline leaves idle (target on
a GPU: 80 % or more). Records the device, CPU, workers and torch version.

    python bench/feed.py --data-root ../shared/data/isic2016          # on a GPU (bench/gpu.sh runs it)
    python bench/feed.py --data synthetic --sizes 64 --epochs 1 --steps 2 --limit 8   # a smoke run on the CPU
"""
import argparse
import statistics

import torch

from minunet import ResNet34UNet
from minunet.data import data_names, make_dataset
from minunet.device import Runtime, choose_device, default_workers
from minunet.recipe import Recipe
from minunet.training.loop import fit
from speed import seconds, sync, train_stepper  # bench/speed.py: the same step as its sections 1-5


def model_only(size, batch, device, amp_dtype, steps):
    """images/s of the training step alone, on a batch that never leaves the device (speed.train_stepper)."""
    step = train_stepper(ResNet34UNet(), size, batch, device, channels_last=True, amp=amp_dtype)
    for _ in range(3):  # warm-up: cuDNN / oneDNN choose their kernels
        step()
    sync(device)

    def steps_then_sync():
        for _ in range(steps):
            step()
        sync(device)
    return steps * batch / seconds(steps_then_sync)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="isic2016", choices=data_names(), metavar="NAME",
                        help="a MedSegBench name, an ISIC challenge, folder or synthetic (default isic2016)")
    parser.add_argument("--data-root", default="../shared/data/isic2016")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: minunet's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, help="use at most N images of each split (smoke runs)")
    args = parser.parse_args()
    device, amp_dtype = choose_device(args.device, "auto")
    workers = default_workers(device) if args.workers is None else args.workers
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, autocast {amp_dtype}, {workers} DataLoader workers, batch "
          f"{args.batch_size}")
    print("| size | model-only step, images/s | loop (fit), images/s (median epoch after the first) | loop / model |")
    print("| --- | --- | --- | --- |")
    for size in args.sizes:
        alone = model_only(size, args.batch_size, device, amp_dtype, args.steps)
        train_set = make_dataset(args.data, "train", args.data_root, size, augment=True, limit=args.limit)
        val_set = make_dataset(args.data, "val", args.data_root, size, limit=args.limit)
        torch.manual_seed(0)
        model = ResNet34UNet(train_set.spec.outputs, in_channels=train_set.spec.channels)  # the data's classes
        history = fit(model, train_set, val_set, Recipe(epochs=args.epochs, batch_size=args.batch_size),
                      Runtime(device, workers=workers), log=None)
        loop = statistics.median(row["train_images_per_s"] for row in history[1:] or history)
        print(f"| {size} | {alone:.0f} | {loop:.0f} | {100 * loop / alone:.0f} % |", flush=True)


if __name__ == "__main__":
    main()
