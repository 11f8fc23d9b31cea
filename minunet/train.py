"""The training loop: `train_one_epoch` (forward, loss, backward, step), `fit` (set-up, then an epoch at a
time: train, validate, keep the best), and the learning-rate schedule.

The loop: Adam, a linear warm-up then a cosine decay of the learning rate (per step), the recipe's loss
(minunet.recipe: BCE + Jaccard by default), augmentation on the training split only (it is the dataset's), the
validation Dice after every epoch, and the best epoch kept. A seed fixes the initial weights, the order of the
images and every augmentation, so a CPU run repeats exactly, also when it is killed and resumed from last.pt. Under
torchrun each process trains on its share of every batch (minunet.distributed); only rank 0 writes files or prints.
"""
import math
import os
import time
from dataclasses import asdict

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import distributed
from .batchnorm import check_batchnorm
from .device import PRECISIONS, Runtime, default_workers
from .ema import EMA
from .errors import CheckpointError, SettingError, TrainingError
from .evaluation import THRESHOLDS, best_threshold, evaluate
from .inference import Inference
from .catalog import DataSpec
from .multiclass import loss_for, loss_name
from .recipe import Recipe
from .rundir import save_epoch, write_curves
from .transforms import normalisation


def lr_factor(step, warmup_steps, total_steps):
    """Learning-rate multiplier at optimizer step `step`: linear warm-up to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class LossNotFinite(TrainingError):
    """The loss became inf or nan (here or, under torchrun, in another process) at step `step` of an epoch."""

    def __init__(self, value, step):
        super().__init__(f"the loss became {value} at step {step}")
        self.value, self.step = value, step


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


def fit(model, train_set, val_set, out_dir=None, recipe=None, runtime=None, resume=None, run_info=None,
        show_progress=True, log=print):
    """Train any segmentation model (logits (B, 1, H, W); (B, K, H, W) for K > 2 classes) on map-style datasets
    of (image, mask[, id]) tensors
    with a recipe (default Recipe(): what `minunet train` runs), validating after each epoch (with the
    dataset's set_epoch and original_mask where it has them); return the history, a dict per epoch.

    out_dir (None: no files): best.pt, last.pt, history.csv, curves.png (minunet.rundir). recipe: epochs,
    batch size (global, over processes), learning rate, loss, EMA (validated, kept as best.pt and left in
    `model` at the end), validation TTA, threshold tuning, seed (the datasets carry the augmentation). runtime:
    device, precision, DataLoader workers. resume: a last.pt's dict, to continue. run_info: what the checkpoints
    record of the run besides the recipe (the data, for instance). show_progress: a tqdm bar per epoch (on a
    terminal). log: called with each epoch's line. The data's channels and classes (train_set.spec, RGB and
    binary where it has none) choose the loss (minunet.multiclass.loss_for: the recipe's for two classes, its
    softmax counterpart for more) and the normalisation, and the checkpoints record them.
    """
    recipe, runtime = recipe or Recipe(), runtime or Runtime()
    device, amp_dtype = runtime.choose()
    rank, world = distributed.join(device)
    if recipe.batch_size % world:
        raise SettingError(f"--batch-size {recipe.batch_size} must be a multiple of the {world} processes")
    torch.manual_seed(recipe.seed)
    model = model.to(device, memory_format=torch.channels_last)  # NHWC: faster convolutions on CPU and GPU
    net = distributed.wrap(model, world)  # runs forward and backward; `model` is what is optimised and saved
    sampler = distributed.ShuffledShare(train_set, recipe.seed, rank, world)
    loader = make_loader(train_set, recipe.batch_size // world, sampler, device, runtime.workers)
    total_steps = recipe.epochs * len(loader)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    warmup = max(1, min(len(loader), total_steps // 10))  # one epoch, at most a tenth of the run
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    spec = getattr(train_set, "spec", DataSpec())
    loss_fn, ema = loss_for(recipe.loss, len(spec.classes)), EMA(model, recipe.ema) if recipe.ema else None
    start, best_dice, history = restore(resume, model, optimizer, scheduler, scaler, ema)
    h, w = train_set[0][0].shape[-2:]
    check_batchnorm(model, recipe.batch_size // world, (h, w), world)  # a 1 x 1 map in a batch of 1: one line, now
    size = h if h == w else [h, w]  # the working size, as the data have it
    mean, std = normalisation(spec.channels)
    ran_in = next(name for name, dtype in PRECISIONS.items() if dtype == amp_dtype)  # "auto" made concrete
    info = dict(run={**asdict(recipe), "size": size if h == w else (h, w), **(run_info or {}), "ran_in": ran_in},
                size=size, mean=mean, std=std, channels=spec.channels, classes=list(spec.classes))
    validation = (Inference(mean=mean, std=std, tta=recipe.tta, spec=spec),
                  Runtime(device, runtime.precision, 0, recipe.batch_size))
    if rank == 0 and out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        if history:  # resumed: history.csv and curves.png as last.pt has them (a kill may fall in between)
            write_curves(out_dir, history, loss_name(recipe.loss, len(spec.classes)))
    for epoch in range(start, recipe.epochs + 1):
        sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)  # this epoch's augmentations
        bar = tqdm(loader, desc=f"epoch {epoch}/{recipe.epochs}", leave=False, dynamic_ncols=True,
                   disable=None if show_progress and rank == 0 else True)  # None: a bar on terminals only
        t0 = time.perf_counter()
        try:
            train_loss = train_one_epoch(net, bar, loss_fn, optimizer, scheduler, scaler, amp_dtype, ema)
        except LossNotFinite as err:
            raise TrainingError(f"the loss became {err.value} at epoch {epoch}, step {err.step}: training "
                                f"stopped, last.pt is kept as it was; try a lower --lr or --precision fp32") from None
        t1 = time.perf_counter()
        scored = ema.module if ema else model  # the weights validated and kept as best.pt
        row = dict(epoch=epoch, lr=optimizer.param_groups[0]["lr"],
                   train_loss=distributed.sum_over_processes([train_loss], device, world)[0] / world,
                   **validate(scored, val_set, *validation, loss_fn, rank, world),
                   train_seconds=t1 - t0, train_images_per_s=len(loader) * recipe.batch_size / (t1 - t0),
                   val_seconds=time.perf_counter() - t1,
                   # since the run began, over resumes (0.1.0's rows lack it)
                   elapsed_seconds=(history[-1].get("elapsed_seconds", 0) if history else 0) + time.perf_counter() - t0)
        history.append(row)
        is_best, best_dice = row["val_dice"] > best_dice, max(best_dice, row["val_dice"])
        threshold = best_threshold(row["dice_by_threshold"]) if recipe.tune_threshold else Inference.threshold
        line = (f"epoch {epoch}/{recipe.epochs}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
                f"val Dice {row['val_dice']:.4f}  val Jaccard {row['val_jaccard']:.4f}  "
                f"{row['train_images_per_s']:.1f} img/s" + ("  (best)" if is_best else ""))
        if rank == 0 and out_dir is not None:
            try:
                save_epoch(out_dir, model, scored if is_best else None,
                           dict(info, epoch=epoch, best_dice=best_dice, threshold=threshold),
                           history, optimizer, scheduler, scaler, ema)
            except (TrainingError, CheckpointError):  # a full disk, say: the epoch trained, its files failed
                log(line)
                raise
        if rank == 0:  # after its files: a printed epoch is on disk
            log(line)
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())  # the averaged weights are the result
    return history


def make_loader(dataset, batch_size, sampler, device, workers=None):
    """The training DataLoader: batches of one process's share, the last short batch dropped (every step sees
    a full batch); worker processes kept across epochs, pinned memory on CUDA."""
    workers = default_workers(device) if workers is None else workers
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    if len(loader) == 0:
        raise SettingError(f"{len(dataset)} training images do not fill one batch of "
                           f"{batch_size * int(os.environ.get('WORLD_SIZE', '1'))}: lower --batch-size")
    return loader


def restore(state, model, optimizer, scheduler, scaler, ema=None):
    """Load a last.pt's training state (or nothing, for None); (first epoch to run, best Dice, history)."""
    if state is None:
        return 1, -1.0, []
    model.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if ema is not None and "ema" in state:
        ema.load_state_dict(state["ema"])
    torch.set_rng_state(state["rng_state"])
    return state["epoch"] + 1, state["best_dice"], list(state["history"])


def validate(model, val_set, inference, runtime, loss_fn, rank, world):
    """val_loss, val_dice, val_jaccard and dice_by_threshold of `model` on val_set, pooled over processes
    (each scores every world-th image, with rank 0's BatchNorm statistics)."""
    distributed.share_buffers(model, world)
    s = evaluate(model, val_set, inference, runtime, loss_fn, indices=range(rank, len(val_set), world))
    n, *sums = distributed.sum_over_processes(
        [s["count"], s["loss"] * s["count"], s["dice"] * s["count"], s["jaccard"] * s["count"]]
        + [s["dice_by_threshold"][t] * s["count"] for t in THRESHOLDS], device_of(model), world)
    return dict(val_loss=sums[0] / n, val_dice=sums[1] / n, val_jaccard=sums[2] / n,
                dice_by_threshold={t: v / n for t, v in zip(THRESHOLDS, sums[3:])})


def device_of(model):
    """The device of a model's parameters."""
    return next(model.parameters()).device
