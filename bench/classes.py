"""The cost of several classes and of gray images against the binary path, on the same images: seconds per
training epoch (forward, loss, backward, Adam step) and per validation pass of a minunet.UNet.

Variants, all the synthetic lesions of one split (minunet.data.synthetic; the 3-class set adds an ink stroke to the
same lesions):
  binary        2 classes, RGB: one logit, sigmoid, BCE + Jaccard (minunet's default path)
  3 classes     3 classes, RGB: three logits, softmax, CE + Jaccard over the foreground classes
  binary gray   2 classes, 1 channel
  3 classes gray
The same recipe and seed for each (minunet.recipe's, fp32, no TTA). After one warm-up epoch each, the
variants' epochs are timed in turn (epoch 1 of each, then epoch 2 of each, ...), so that other work on a shared
machine slows them alike; the median epoch is printed, and one validation pass each. Prints the CPU (model, cores, flags), torch's version and threads.

    python bench/classes.py                          # 200 images at 128 px, width 16: minutes on 2 cores
    python bench/classes.py --limit 16 --size 64 --epochs 1   # a quick look
    python bench/classes.py --data NAME --data-root DIR       # a MedSegBench file at hand, its own classes
"""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from minunet.data import make_dataset  # noqa: E402
from minunet.evaluation import evaluate  # noqa: E402
from minunet.inference import Inference  # noqa: E402
from minunet.losses import LOSSES  # noqa: E402
from minunet.models import new_model  # noqa: E402
from minunet.recipe import Recipe  # noqa: E402
from minunet.training.loop import make_loader, train_one_epoch  # noqa: E402
from minunet.transforms import normalisation  # noqa: E402
from threads import cpu_description  # noqa: E402

VARIANTS = {"binary": (2, 3), "3 classes": (3, 3), "binary gray": (2, 1), "3 classes gray": (3, 1)}


class Variant:
    """A fresh U-Net for the data, its loss, optimizer and loader, and the seconds of each epoch it trained."""

    def __init__(self, train_set, val_set, recipe):
        self.train_set, self.val_set, self.recipe = train_set, val_set, recipe
        self.model = new_model(recipe, train_set.spec).to(memory_format=torch.channels_last)
        self.loss_fn = LOSSES[recipe.loss]()  # for any number of classes
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=recipe.lr)
        self.loader = make_loader(train_set, recipe.batch_size, range(len(train_set)), torch.device("cpu"), 0)
        self.seconds = []

    def epoch(self):
        """Train one epoch and keep its seconds."""
        start = time.perf_counter()
        train_one_epoch(self.model, self.loader, self.loss_fn, self.optimizer)
        self.seconds.append(time.perf_counter() - start)

    def validation_seconds(self):
        """The seconds of one validation pass (evaluate, no TTA), after one untimed pass."""
        mean, std = normalisation(self.train_set.spec.channels)
        inference = Inference(size=self.recipe.size, mean=mean, std=std, tta=False, spec=self.train_set.spec)
        evaluate(self.model, self.val_set, inference)
        start = time.perf_counter()
        evaluate(self.model, self.val_set, inference)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic", help="synthetic (the four variants) or a MedSegBench name")
    parser.add_argument("--data-root", metavar="DIR")
    parser.add_argument("--limit", type=int, default=200, help="training images (default 200)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant (default 3)")
    parser.add_argument("--base-channels", type=int, default=16)
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    recipe = Recipe(size=args.size, base_channels=args.base_channels, batch_size=16, tta=False)
    print(f"minunet.UNet width {args.base_channels}, {args.size} px, batch {recipe.batch_size}, fp32, "
          f"{args.limit} training images, {args.epochs} timed epochs (median)")
    if args.data == "synthetic":
        chosen = {name: dict(classes=k, channels=c) for name, (k, c) in VARIANTS.items()}
    else:
        chosen = {args.data: {}}
    variants = {name: Variant(make_dataset(args.data, "train", args.data_root, args.size, limit=args.limit, **options),
                              make_dataset(args.data, "val", args.data_root, args.size, limit=args.limit // 4,
                                           **options), recipe) for name, options in chosen.items()}
    for _ in range(args.epochs + 1):  # the first is a warm-up
        for variant in variants.values():
            variant.epoch()
    results = {}
    for name, variant in variants.items():
        results[name] = statistics.median(variant.seconds[1:]), variant.validation_seconds()
        spec = variant.train_set.spec
        print(f"  {name:<16} train {results[name][0]:7.2f} s/epoch   validation {results[name][1]:6.2f} s   "
              f"({spec.channels} channel(s), {len(spec.classes)} classes; epochs "
              f"{', '.join(f'{t:.2f}' for t in variant.seconds[1:])} s)", flush=True)
    if "binary" in results:
        for name, (train, val) in results.items():
            print(f"  {name:<16} x{train / results['binary'][0]:.2f} the binary epoch, "
                  f"x{val / results['binary'][1]:.2f} its validation")


if __name__ == "__main__":
    main()
