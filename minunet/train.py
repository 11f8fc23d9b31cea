"""Training, evaluation and prediction: `fit`, `evaluate`, `predict`, and the checkpoints that link them.

The recipe: Adam, a linear warm-up then a cosine decay of the learning rate (per step), BCEDiceLoss,
augmentation on the training split only, the validation Dice after every epoch, and the best epoch kept.
A seed fixes the initial weights, the order of the images and every augmentation, so a CPU run repeats
exactly, also when it is killed and resumed from last.pt. Under torchrun the same loop runs as
DistributedDataParallel: each process takes its share of every batch, and only rank 0 writes or prints.
"""
import copy
import csv
import math
import os
import pickle
import re
import time
import warnings

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .data import open_image
from .errors import CheckpointError, SettingError, TrainingError, one_line
from .losses import BCEDiceLoss
from .metrics import MetricAccumulator
from .resunet import ResNet34UNet
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Normalize, Resize, pil_to_tensor, tensor_to_pil
from .unet import UNet

MODELS = {"unet": UNet, "resunet34": ResNet34UNet}
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_dice", "val_jaccard", "train_seconds",
                   "train_images_per_s", "val_seconds")


# ---------------------------------------------------------------------------------------------------------
# Models and checkpoints

def build_model(name, **kwargs):
    """A model by its command-line name ("unet" or "resunet34") and constructor arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def model_spec(model):
    """(name, constructor arguments) that rebuild `model`'s architecture; its weights come separately."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    if isinstance(model, UNet):
        return "unet", dict(in_channels=model.in_channels, out_channels=model.out_channels,
                            base_channels=model.base_channels, bilinear=model.bilinear)
    if isinstance(model, ResNet34UNet):
        return "resunet34", dict(out_channels=model.out_channels)
    raise ValueError(f"cannot checkpoint a {type(model).__name__}: use a minunet model")


def save_checkpoint(path, model, **extra):
    """Write model name, arguments and weights (plus `extra` entries) to `path`, atomically.

    The file is written beside `path`, flushed to disk and renamed over it, so a crash or a full disk
    mid-write leaves the old file intact; a failed write raises CheckpointError.
    """
    name, args = model_spec(model)
    state = dict(model=name, model_args=args, state_dict=getattr(model, "module", model).state_dict(), **extra)
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a power cut cannot leave an empty file
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # a full disk, no permission, ... (torch's writer: RuntimeError)
        if os.path.exists(tmp):
            os.remove(tmp)
        raise CheckpointError(f"cannot write {path} ({' '.join(str(err).split())[:160]}); the previous "
                              f"{os.path.basename(path)}, if any, is kept as it was") from None


def load_checkpoint(path):
    """Read a minunet checkpoint (with torch.load(weights_only=True): no code in it can run)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist: pass the path of a best.pt or last.pt")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (was its writing cut short?): pass another checkpoint")
    try:
        with warnings.catch_warnings():  # torch's notes (on pickle protocols, ...) would add lines to stderr
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError: unsafe or unknown content; RuntimeError, EOFError: truncated
        text = " ".join(str(err).split())
        unsafe = re.search(r"(?:GLOBAL|class) ([\w.]+)", text)  # the function or class it would call
        if isinstance(err, pickle.UnpicklingError) and unsafe:
            raise CheckpointError(f"refusing {path}: it holds pickled Python objects that could run code "
                                  f"({unsafe.group(1)}); minunet loads only tensors and plain data: use a "
                                  f"checkpoint written by minunet train") from None
        reason = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        reason = reason.group(1) if reason else text.split(". ")[0] or type(err).__name__
        raise CheckpointError(f"cannot read checkpoint {path} (truncated, or not written by torch.save?): "
                              f"{reason[:160]}; copy it again or pass another checkpoint") from None
    if not (isinstance(state, dict) and state.get("model") in MODELS and isinstance(state.get("model_args"), dict)
            and "state_dict" in state):
        raise CheckpointError(f"{path} is not a minunet checkpoint (no model name, arguments and weights in it): "
                              f"pass a best.pt or last.pt written by minunet train")
    return state


def model_from_checkpoint(state):
    """The model a checkpoint (as returned by load_checkpoint) describes, with its weights, in eval mode."""
    try:
        model = build_model(state["model"], **state["model_args"])
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, TypeError, ValueError) as err:  # other arguments, keys or shapes than the model's
        raise CheckpointError(f"checkpoint does not fit a {state['model']} model: "
                              f"{' '.join(str(err).split())[:240]}") from None
    return model.eval()


# ---------------------------------------------------------------------------------------------------------
# Device, precision and speed

def pick_device(name="auto"):
    """torch.device for "auto" (CUDA when present, else CPU), "cpu" or "cuda"."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingError("--device cuda was asked for, but PyTorch sees no CUDA GPU: use --device cpu")
    return torch.device(name)


def cpu_has_native_bf16():
    """Whether this CPU computes bfloat16 in hardware (AMX or AVX-512 BF16); elsewhere bf16 is emulated, slow."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast_dtype(precision, device):
    """The autocast dtype for `precision` on `device`, or None for plain fp32.

    auto: bf16 on a CPU with native bf16, fp32 on other CPUs; on CUDA bf16 where supported, else fp16.
    """
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def fold_batchnorm(model):
    """Fold each BatchNorm2d into the Conv2d just before it (for inference; the model must be in eval mode).

    In minunet's models every BatchNorm2d directly follows its Conv2d among its parent's children, so
    conv -> bn becomes one conv with w' = w * g / s and b' = (b - mean) * g / s + beta, s = sqrt(var + eps),
    and the BatchNorm2d becomes an Identity. The outputs stay the same to float rounding.
    """
    assert not model.training, "fold_batchnorm is for eval mode"
    for parent in model.modules():
        children = list(parent.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.weight = nn.Parameter((conv.weight * scale[:, None, None, None]).detach())
                conv.bias = nn.Parameter(((bias - bn.running_mean) * scale + bn.bias).detach())
                setattr(parent, bn_name, nn.Identity())
    return model


def prepare_for_inference(model, device, compile=False):
    """A copy of `model` in its fastest form for predicting: eval mode, BatchNorm folded, channels_last.

    compile=True compiles the copy with torch.compile instead (inductor, the weights frozen into the graph;
    contiguous tensors suit it better than channels_last): its first call takes 30 to 60 s on 2 CPU cores
    (seconds once inductor's cache holds the graph); after that it runs x1.0 to x1.15 the eager channels_last
    copy, x1.2 to x1.7 a plain fp32 model (bench/RESULTS.md). It needs a C++ compiler on the CPU.
    """
    model = fold_batchnorm(copy.deepcopy(model).eval()).to(device)
    if compile:
        return torch.compile(model, dynamic=False, options={"freezing": True})
    return model.to(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------------------------------------
# Distributed helpers (a single process is world size 1)

def distributed_setup(device):
    """(rank, world size); under torchrun also joins the process group (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def all_reduce_sum(values, device):
    """Sum a list of floats over all processes (unchanged in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def finite_everywhere(loss):
    """Whether the loss is finite in every process (so that all of them stop together when one is not)."""
    finite = torch.isfinite(loss.detach()).to(torch.int32)  # () 1 or 0
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite)


# ---------------------------------------------------------------------------------------------------------
# The loop

def lr_factor(step, warmup_steps, total_steps):
    """Learning-rate multiplier at optimizer step `step`: linear warm-up to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def fit(model, train_set, val_set, out_dir, epochs=20, batch_size=16, lr=1e-3, device="auto",
        precision="auto", seed=0, resume=None, run_info=None, show_progress=True, log=print):
    """Train `model` on `train_set`, validate on `val_set` each epoch; return the history (list of dicts).

    Writes into out_dir: best.pt (best validation Dice), last.pt (every epoch), history.csv, curves.png;
    with out_dir=None it writes nothing (then any segmentation nn.Module can be trained, e.g. a reference).
    `batch_size` is the global batch; under torchrun each of N processes takes batch_size / N of it.
    resume: a checkpoint dict (load_checkpoint of a last.pt) to continue from. run_info: a dict saved in
    the checkpoints (what the command line needs to resume: data, sizes, seed, ...).
    """
    from .plots import plot_history  # matplotlib is only needed once a run writes files

    device = pick_device(device) if isinstance(device, str) else device
    rank, world = distributed_setup(device)
    if batch_size % world:
        raise SettingError(f"--batch-size {batch_size} must be a multiple of the {world} processes")
    amp_dtype = autocast_dtype(precision, device)
    torch.manual_seed(seed)
    model = model.to(device, memory_format=torch.channels_last)  # NHWC: faster convolutions on CPU and GPU
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model

    # Every process draws the same shuffle (seed, epoch) and takes every world-th image of it, so the
    # global batch is the same whatever the number of processes.
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                                  seed=seed, drop_last=False)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size // world, sampler=sampler,
                                         drop_last=True)  # a batch of 1 would break BatchNorm
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise SettingError(f"{len(train_set)} training images do not fill one batch of {batch_size}: "
                           f"lower --batch-size")
    total_steps = epochs * steps_per_epoch
    warmup_steps = max(1, min(steps_per_epoch, total_steps // 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loss_fn = BCEDiceLoss()

    history, best_dice, start_epoch = [], -1.0, 1
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        history, best_dice, start_epoch = resume["history"], resume["best_dice"], resume["epoch"] + 1
        torch.set_rng_state(resume["rng_state"])
    if rank == 0 and out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        if history:  # resumed: history.csv and curves.png as last.pt has them (a kill may fall in between)
            write_history(history, os.path.join(out_dir, "history.csv"))
            plot_history(history, os.path.join(out_dir, "curves.png"))

    for epoch in range(start_epoch, epochs + 1):
        # ---- train one epoch
        net.train()
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        # disable=None: tqdm shows the bar on a terminal and stays silent in logs and pipes
        bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", leave=False, dynamic_ncols=True,
                   disable=None if show_progress and rank == 0 else True)
        loss_sum, t0 = 0.0, time.perf_counter()
        for step, (images, masks, _) in enumerate(bar, start=1):
            images = images.to(device, memory_format=torch.channels_last)  # (b, 3, S, S), b = B / world
            masks = masks.to(device)  # (b, 1, S, S)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = net(images)  # (b, 1, S, S)
            loss = loss_fn(logits.float(), masks)
            if not finite_everywhere(loss):
                value = loss.item() if not torch.isfinite(loss) else "non-finite in another process"
                raise TrainingError(f"the loss became {value} at epoch {epoch}, step {step}: training "
                                    f"stopped, last.pt is kept as it was; try a lower --lr or --precision fp32")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.item()
            bar.set_postfix(loss=f"{loss_sum / step:.4f}")
        train_seconds = time.perf_counter() - t0
        train_loss = all_reduce_sum([loss_sum / steps_per_epoch], device)[0] / world

        # ---- validate (each process scores its share of the images; the sums are pooled)
        t0 = time.perf_counter()
        if world > 1:  # every process validates with rank 0's BatchNorm statistics, the ones it saves
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)
        scores = evaluate(model, val_set, device=device, precision=precision, batch_size=batch_size,
                          indices=range(rank, len(val_set), world))
        count, loss_total, dice_total, jaccard_total = all_reduce_sum(
            [scores["count"], scores["loss"] * scores["count"], scores["dice"] * scores["count"],
             scores["jaccard"] * scores["count"]], device)
        row = dict(epoch=epoch, lr=optimizer.param_groups[0]["lr"], train_loss=train_loss,
                   val_loss=loss_total / count, val_dice=dice_total / count, val_jaccard=jaccard_total / count,
                   train_seconds=train_seconds,
                   train_images_per_s=steps_per_epoch * batch_size / train_seconds,
                   val_seconds=time.perf_counter() - t0)
        history.append(row)

        # ---- keep the best and the last epoch (rank 0 only; out_dir=None writes nothing)
        is_best = row["val_dice"] > best_dice
        best_dice = max(best_dice, row["val_dice"])
        if rank == 0 and out_dir is not None:
            info = dict(run_info or {}, size=train_set[0][0].shape[-1],
                        mean=IMAGENET_MEAN, std=IMAGENET_STD, epoch=epoch, best_dice=best_dice)
            if is_best:
                save_checkpoint(os.path.join(out_dir, "best.pt"), model, **info)
            save_checkpoint(os.path.join(out_dir, "last.pt"), model, **info, history=history,
                            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                            scaler=scaler.state_dict(), rng_state=torch.get_rng_state())
            write_history(history, os.path.join(out_dir, "history.csv"))
            plot_history(history, os.path.join(out_dir, "curves.png"))
        if rank == 0:
            log(f"epoch {epoch}/{epochs}  train loss {train_loss:.4f}  val loss {row['val_loss']:.4f}  "
                f"val Dice {row['val_dice']:.4f}  val Jaccard {row['val_jaccard']:.4f}  "
                f"{row['train_images_per_s']:.1f} img/s" + ("  (best)" if is_best else ""))
    return history


def write_history(history, path):
    """One CSV row per epoch, HISTORY_COLUMNS first; written atomically like the checkpoints."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows({k: row[k] for k in HISTORY_COLUMNS} for row in history)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------
# Evaluation and prediction

@torch.no_grad()
def logits_of(model, images, amp_dtype, channels_last=True):
    """The model's float32 logits (B, 1, H, W) for normalised images (B, 3, H, W)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits = model(images.contiguous(memory_format=layout))  # (B, 1, H, W)
    return logits.float()


@torch.no_grad()
def evaluate(model, dataset, device="auto", precision="auto", batch_size=16, indices=None, per_image=False):
    """The ISIC metrics of `model` on `dataset`: a dict of means over images, plus "loss" and "count".

    Each prediction is scored against the ground truth at the mask's own resolution (the probabilities are
    resized to it bilinearly, then thresholded at 0.5), as the challenge scores. indices: score only these
    items. per_image=True adds "per_image" (each metric per image, in order) and "ids".
    """
    device = pick_device(device) if isinstance(device, str) else device
    amp_dtype = autocast_dtype(precision, device)
    was_training = model.training
    model.eval().to(device)
    indices = list(range(len(dataset)) if indices is None else indices)
    acc, loss_fn, loss_sum, ids = MetricAccumulator(), BCEDiceLoss(), 0.0, []
    for start in range(0, len(indices), batch_size):
        batch = [dataset[i] for i in indices[start:start + batch_size]]
        images = torch.stack([b[0] for b in batch]).to(device)  # (B, 3, S, S)
        masks = torch.stack([b[1] for b in batch]).to(device)  # (B, 1, S, S)
        logits = logits_of(model, images, amp_dtype)  # (B, 1, S, S)
        loss_sum += loss_fn(logits, masks).item() * len(batch)
        probs = torch.sigmoid(logits)  # (B, 1, S, S)
        for j, i in enumerate(indices[start:start + batch_size]):
            truth = dataset.original_mask(i)  # (1, H, W) uint8, the ground truth at its own size
            p = F.interpolate(probs[j:j + 1], size=truth.shape[1:], mode="bilinear", align_corners=False) \
                if truth.shape[1:] != probs.shape[2:] else probs[j:j + 1]  # (1, 1, H, W)
            acc.update(p.cpu() > 0.5, truth[None].bool())
        ids += [b[2] for b in batch]
    model.train(was_training)
    if not indices:
        return dict(count=0, loss=0.0, **{name: 0.0 for name in ("dice", "jaccard")})
    scores = acc.compute()
    scores["loss"] = loss_sum / len(indices)
    if per_image:
        scores["per_image"], scores["ids"] = acc.per_image(), ids
    return scores


def mask_to_image(mask):
    """A (H, W) bool tensor as a PIL image of mode L with values 0 and 255."""
    return tensor_to_pil(mask[None].to(torch.uint8) * 255)


def overlay_image(image, mask, colour=(255, 40, 40), alpha=0.45):
    """The image (3, H, W) uint8 with the mask (H, W) bool tinted in `colour`, as a PIL RGB image."""
    tint = torch.tensor(colour, dtype=torch.float32)[:, None, None]  # (3, 1, 1)
    out = torch.where(mask, (1 - alpha) * image.float() + alpha * tint, image.float())  # (3, H, W)
    return tensor_to_pil(out.round().to(torch.uint8))


@torch.no_grad()
def predict(model, paths, out_dir, size, device="auto", precision="auto", overlay=False,
            mean=IMAGENET_MEAN, std=IMAGENET_STD, batch_size=16, compile=False, warn=print):
    """Segment each image file in `paths`; write <stem>_Segmentation.png (0/255) at the image's own size.

    Images go through the model batch_size at a time. overlay=True also writes <stem>_overlay.png.
    compile=True runs a compiled copy of the model (see prepare_for_inference): worth its start-up cost for
    hundreds of images. An unreadable image is skipped with a call to `warn`.
    Returns (number written, list of skipped paths).
    """
    from .data import DataError

    device = pick_device(device) if isinstance(device, str) else device
    amp_dtype = autocast_dtype(precision, device)
    model = prepare_for_inference(model, device, compile)
    resize, normalize = Resize(size), Normalize(mean, std)
    os.makedirs(out_dir, exist_ok=True)
    written, skipped = 0, []
    batch = max(1, min(batch_size, len(paths)))
    for start in range(0, len(paths), batch):
        images, stems = [], []  # each (3, H, W) uint8, at its own size
        for path in paths[start:start + batch]:
            try:
                images.append(pil_to_tensor(open_image(path)))
            except DataError as err:
                warn(f"skipped: {err}")
                skipped.append(path)
                continue
            stems.append(os.path.splitext(os.path.basename(path))[0])
        if not images:
            continue
        small = torch.stack([normalize(*resize(image, torch.zeros(1, *image.shape[1:])))[0]
                             for image in images])  # (B, 3, S, S) float
        if compile:  # a compiled model compiles once per shape: pad a short batch by repeating its first image
            small = torch.cat([small, small[:1].expand(batch - len(small), -1, -1, -1)])  # (batch, 3, S, S)
        try:
            probs = torch.sigmoid(logits_of(model, small.to(device), amp_dtype, not compile))  # (B, 1, S, S)
        except torch._dynamo.exc.BackendCompilerFailed as err:  # no C++ compiler, for example
            raise SettingError(f"torch.compile failed ({str(err).splitlines()[0]}); predict without compiling") \
                from None
        for image, stem, prob in zip(images, stems, probs):  # prob: (1, S, S)
            prob = F.interpolate(prob[None], size=image.shape[1:], mode="bilinear", align_corners=False)
            mask = (prob[0, 0] > 0.5).cpu()  # (H, W) bool
            mask_to_image(mask).save(os.path.join(out_dir, f"{stem}_Segmentation.png"))
            if overlay:
                overlay_image(image, mask).save(os.path.join(out_dir, f"{stem}_overlay.png"))
            written += 1
    return written, skipped
