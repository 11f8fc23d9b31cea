"""The training loop: `train_one_epoch` (forward, loss, backward, step), `fit` (set-up, then an epoch at a
time: train, validate, keep the best), and the learning-rate schedule.

The loop: Adam, a linear warm-up then a cosine decay of the learning rate (per step), the recipe's loss
(minunet.recipe: BCE + Jaccard by default), augmentation on the training split only (it is the dataset's), the
validation Dice after every epoch, and the best epoch kept. A seed fixes the initial weights, the order of the
images and every augmentation, so a CPU run repeats exactly, also when it is killed and resumed from last.pt. Under
torchrun each process trains on its share of every batch (minunet.training.distributed); only rank 0 hands
its epochs on and prints.
"""
import contextlib
import math
import os
import time

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import distributed
from .batchnorm import check_batchnorm
from ..device import Runtime, default_workers
from .ema import EMA
from ..errors import DataError, Fix, SettingError, TrainingError
from ..evaluation import evaluate
from ..losses import LOSSES
from ..data.catalog import DataSpec
from ..recipe import Recipe
from .epoch import (Epoch, epoch_line, hand_on, kept_threshold, model_record, restore, timings, training_state,
                    validation_inference)


def lr_factor(step, warmup_steps, total_steps):
    """Learning-rate multiplier at optimizer step `step`: linear warm-up to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class LossNotFinite(TrainingError):
    """The loss became inf or nan (here or, under torchrun, in another process) at step `step` of an epoch (of
    epoch `epoch`, once fit knows it): training stopped before stepping on it."""

    def __init__(self, value, step, epoch=None):
        at = f"epoch {epoch}, step {step}" if epoch is not None else f"step {step}"
        super().__init__(f"the loss became {value} at {at}: training stopped")
        self.value, self.step, self.epoch = value, step, epoch


def train_one_epoch(net, batches, loss_fn, optimizer, scheduler=None, scaler=None, amp_dtype=None, ema=None):
    """One pass over `batches` (any iterable of (images, masks, ...)): forward, loss, backward, step; returns
    the mean loss. Raises LossNotFinite when the loss is not a finite number, before stepping on it.

    net is the model, or under torchrun the model wrapped in DistributedDataParallel, which averages the
    gradients of all processes during backward. scheduler: stepped after each step (the learning rate per
    step). scaler: a GradScaler against fp16 underflow (None: none). amp_dtype: the autocast dtype (None:
    fp32). ema, when given, takes each step's weights into its moving average.
    """
    net.train()  # BatchNorm normalises with this batch's statistics (and updates its running ones)
    device, total = next(net.parameters()).device, 0.0
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)  # disabled: scale() and step() pass through
    for step, (images, masks, *_) in enumerate(batches, start=1):
        images = images.to(device, non_blocking=True, memory_format=torch.channels_last)  # (B, 3, H, W)
        masks = masks.to(device, non_blocking=True)  # (B, 1, H, W) in {0, 1}, or class indices
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = net(images)  # (B, 1, H, W), or (B, K, H, W) for K > 2 classes
        loss = loss_fn(logits.float(), masks)  # a scalar
        if not distributed.finite_everywhere(loss):  # every process stops at the same step
            raise LossNotFinite(loss.item() if not torch.isfinite(loss) else "non-finite in another process", step)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # d loss / d weights, into each parameter's .grad
        scaler.step(optimizer)  # the Adam step
        scaler.update()
        if scheduler is not None:
            scheduler.step()  # the next step's learning rate
        if ema is not None:
            ema.update(net)
        total += loss.item()
    return total / step


def fit(model, train_set, val_set, recipe=None, runtime=None, *, resume=None, on_epoch=None, log=print):
    """Train any segmentation model (logits (B, 1, H, W); (B, K, H, W) for K > 2 classes) on map-style datasets
    of (image, mask[, id]) tensors with a recipe (default Recipe(): what `minunet train` runs), validating
    after each epoch (with the dataset's set_epoch and original_mask where it has them); return the history, a
    dict per epoch. Nothing is written to disk.

    recipe: epochs, batch size (global, over processes), learning rate, loss, EMA (validated, and left in
    `model` at the end), validation TTA, threshold tuning, seed (the datasets carry the augmentation). runtime:
    device, precision, DataLoader workers. resume: a last.pt's Checkpoint, to continue. on_epoch: called with each
    finished Epoch (minunet.cli.rundir.RunFolder writes the run's files from it). log: called with each
    epoch's line (None: silent, no progress bar). The data's channels and classes (train_set.spec) choose the
    normalisation and what loss and scores compare; SettingError for tune_threshold with K > 2 classes.
    """
    recipe, runtime = (recipe or Recipe()).for_data(train_set), runtime or Runtime()  # "auto": the data's way up
    spec = data_spec(train_set, val_set)  # what the data are: channels and classes
    device, amp_dtype = runtime.choose()
    rank, world = distributed.join(device)
    torch.manual_seed(recipe.seed)
    model = model.to(device, memory_format=torch.channels_last)  # NHWC: faster convolutions on CPU and GPU
    net = distributed.wrap(model, world)  # runs forward and backward; `model` is what is optimised and saved
    sampler = distributed.ShuffledShare(train_set, recipe.seed, rank, world)
    loader = make_loader(train_set, per_process(recipe.batch_size, world), sampler, device, runtime.workers)
    optimizer, scheduler, scaler = optimiser(model, recipe, len(loader), device, amp_dtype)
    loss_fn = LOSSES[recipe.loss]()  # for any number of classes (cross-entropy is BCE's softmax counterpart)
    ema = EMA(model, recipe.ema) if recipe.ema else None  # a moving average of the weights, where asked
    start, best_dice, history = restore(resume, model, optimizer, scheduler, scaler, ema)
    record = model_record(train_set, recipe, spec, amp_dtype)
    check_batchnorm(model, recipe.batch_size // world, train_set[0][0].shape[-2:], world)  # a 1 x 1 map, batch 1
    validation = (validation_inference(record, recipe, spec),
                  Runtime(device, runtime.precision, 0, recipe.batch_size))  # workers 0: the data are in memory
    for epoch in range(start, recipe.epochs + 1):
        sampler.set_epoch(epoch)  # this epoch's order of the images, and the dataset's augmentations
        bar = tqdm(loader, f"epoch {epoch}/{recipe.epochs}", leave=False, dynamic_ncols=True,
                   disable=None if log and rank == 0 else True)  # disable=None: a progress bar on terminals only
        t0 = time.perf_counter()
        with naming_the_epoch(epoch):  # a loss that is not finite: training stops, naming epoch and step
            train_loss = train_one_epoch(net, bar, loss_fn, optimizer, scheduler, scaler, amp_dtype, ema)
        t1 = time.perf_counter()
        scored = ema.module if ema else model  # the weights validated and kept as the best
        row = dict(epoch=epoch, lr=optimizer.param_groups[0]["lr"],
                   train_loss=distributed.sum_over_processes([train_loss], device, world)[0] / world,
                   **validate(scored, val_set, *validation, loss_fn, rank, world),
                   **timings(t0, t1, len(loader) * recipe.batch_size, history))
        history.append(row)
        is_best, best_dice = row["val_dice"] > best_dice, max(best_dice, row["val_dice"])
        if rank == 0:  # its files (on_epoch), then its line
            kept = dict(record, epoch=epoch, best_dice=best_dice, threshold=kept_threshold(row, recipe, spec))
            hand_on(Epoch(epoch, history, model, scored if is_best else None, kept,
                          training_state(optimizer, scheduler, scaler, ema)), on_epoch, log,
                    epoch_line(row, recipe.epochs, is_best))
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())  # the averaged weights are the result
    return history


def data_spec(train_set, val_set):
    """The training set's DataSpec (RGB and binary where it has none); DataError when either set is empty."""
    for name, dataset in (("training", train_set), ("validation", val_set)):
        if not len(dataset):
            raise DataError(f"the {name} set holds no images: fit trains on one and scores each epoch on the other")
    return getattr(train_set, "spec", DataSpec())


@contextlib.contextmanager
def naming_the_epoch(epoch):
    """A LossNotFinite raised inside says it happened at `epoch`."""
    try:
        yield
    except LossNotFinite as err:
        raise LossNotFinite(err.value, err.step, epoch) from None


def per_process(batch_size, world):
    """Each process's share of a global batch; a batch that does not split evenly is refused."""
    if batch_size % world:
        raise SettingError(f"the batch size {batch_size} must be a multiple of the {world} processes")
    return batch_size // world


def optimiser(model, recipe, steps_per_epoch, device, amp_dtype):
    """(optimizer, scheduler, scaler): Adam at the recipe's learning rate; its schedule per step, a linear warm-up
    over one epoch (at most a tenth of the run), then a cosine decay to 0 (lr_factor); and a GradScaler against
    fp16's underflow (disabled, passing through, in other precisions)."""
    total_steps = recipe.epochs * steps_per_epoch
    warmup = max(1, min(steps_per_epoch, total_steps // 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total_steps))
    return optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)


def make_loader(dataset, batch_size, sampler, device, workers=None):
    """The training DataLoader: full batches of one process's share, workers kept across epochs, pinned on CUDA."""
    workers = default_workers(device) if workers is None else workers
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    if len(loader) == 0:  # the fix: the largest global batch of which every process gets a full share
        n, world = len(dataset), int(os.environ.get("WORLD_SIZE", "1"))
        raise SettingError(f"{n} training images do not fill one batch of {batch_size * world}",
                           fix=[Fix(batch_size=n // world * world, note="or less")] if n >= world else [])
    return loader


def validate(model, val_set, inference, runtime, loss_fn, rank, world):
    """val_loss, val_dice, val_jaccard and (where a threshold decides) dice_by_threshold of `model` on val_set,
    pooled over processes (each scores every world-th image, with rank 0's BatchNorm statistics)."""
    distributed.share_buffers(model, world)
    s = evaluate(model, val_set, inference, runtime, loss_fn, indices=range(rank, len(val_set), world))
    sweep = s.get("dice_by_threshold", {})  # {threshold: mean Dice}; none for K > 2 classes
    n, *sums = distributed.sum_over_processes(
        [s["count"], s["loss"] * s["count"], s["dice"] * s["count"], s["jaccard"] * s["count"]]
        + [dice * s["count"] for dice in sweep.values()], device_of(model), world)
    row = dict(val_loss=sums[0] / n, val_dice=sums[1] / n, val_jaccard=sums[2] / n)
    return dict(row, dice_by_threshold=dict(zip(sweep, (v / n for v in sums[3:])))) if sweep else row


def device_of(model):
    """The device of a model's parameters."""
    return next(model.parameters()).device
