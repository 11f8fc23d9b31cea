"""Several classes on real X-rays: minunet's default recipe against segmentation_models_pytorch's Unet with a
plain recipe, side by side on the JSRT chest radiographs with the SCR label maps (../shared/data/jsrt: 197 gray
images, classes background, lungs, heart, clavicles), paired per image.

Folds: the images, shuffled by --fold-seed, cut into --folds parts; each part is held out once. Of the other
images a seeded 10 % (the same for both libraries) chooses the best epoch, and the rest train. Each held-out
image is scored per class at its masks' own resolution (512 px): the class map of the probabilities resized
bilinearly (argmax), its Dice per foreground class (NaN where a class is in neither map). Both libraries see
the same folds, seeds, validation images and sizes; only the recipe and the code differ.

  minunet   `minunet train --data folder --classes 4 --channels 1 --model resunet34 --encoder-weights none`:
            minunet.recipe's defaults for the data, its own data reading, augmentation, loss, loop and
            inference (everything `minunet train` and `evaluate` do).
  smp       smp.Unet("resnet34", encoder_weights=None), a plain recipe written here independently of minunet:
            cross-entropy + smp's soft Dice over the foreground classes, horizontal flips, rotation up to 15
            degrees, brightness and contrast (torchvision.transforms.v2), the training images' own mean and
            std, Adam at 1e-3 with a cosine decay per epoch, batch 16, the same precision, one pass at test.

    python bench/xray.py --library smp --json bench/out/xray_smp.json
    python bench/xray.py --library minunet --json bench/out/xray_minunet.json
    python bench/xray.py --compare bench/out/xray_smp.json bench/out/xray_minunet.json
    python bench/xray.py --library smp --quick --json /tmp/x.json     # a smoke run: seconds
Prints the CPU (model, flags), torch's version and threads; the JSON keeps every held-out image's scores and
each run's validation curve.
"""
import argparse
import copy
import json
import math
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from minunet.data import LesionDataset, make_dataset  # noqa: E402
from minunet.device import Runtime, cpu_has_native_bf16  # noqa: E402

CLASSES = ("background", "lungs", "heart", "clavicles")
VAL_SHARE = 0.1  # of each fold's training images: they choose the best epoch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--library", choices=["minunet", "smp"])
    p.add_argument("--data-root", default=os.path.join(HERE, "..", "..", "shared", "data", "jsrt"))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--only-folds", type=int, nargs="+", default=None, metavar="K",
                   help="run only these folds (0-based), e.g. to spread the folds over several runs")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (smoke runs)")
    p.add_argument("--quick", action="store_true", help="2 folds, 1 epoch, 64 px, 48 images (a fold trains one batch), seed 0")
    p.add_argument("--json", help="write every held-out image's scores here")
    p.add_argument("--orientation", default="auto", help="minunet's recipe field (auto: the data's, upright)")
    p.add_argument("--loss", default=None, help="minunet's recipe field (default: the recipe's)")
    p.add_argument("--smp-init", action="store_true", help="the diagnostic: minunet's network starts from smp's "
                   "initial weights of the same seed (copied by position, as tests/test_models.py does)")
    p.add_argument("--own-stats", action="store_true", help="minunet normalises with the training images' own "
                   "mean and std instead of ImageNet's gray 0.449 / 0.226 (an experiment: patched in here)")
    p.add_argument("--stop-after", type=int, default=None, metavar="N", help="train only the first N epochs of "
                   "the --epochs schedule (the discovery screen: when each run finds the clavicles)")
    p.add_argument("--no-warmup", action="store_true", help="an experiment: minunet's learning rate starts at "
                   "its peak and decays by the cosine (no warm-up epoch), as smp's recipe here (patched in)")
    p.add_argument("--pooled-dice", action="store_true", help="an experiment: minunet trains smp's loss here, "
                   "cross-entropy + soft Dice pooled over the batch (smooth 0), for its CE + per-image soft "
                   "Jaccard (patched in)")
    p.add_argument("--no-augment", action="store_true", help="a diagnostic: minunet trains on the images as "
                   "they are (no rotation, flip or jitter), to tell whether its augmentation delays a class")
    p.add_argument("--no-tta", action="store_true", help="minunet's recipe field tta off: one pass in validation "
                   "(choosing the epoch) and on the held-out images")
    p.add_argument("--smp-recipe", action="store_true", help="a diagnostic: smp's whole plain recipe inside "
                   "minunet's loop and model (--pooled-dice, --own-stats, --no-tta, smp's augmentation, and its "
                   "cosine per epoch without warm-up), to tell the loop from the recipe")
    p.add_argument("--minunet-model", action="store_true", help="a diagnostic: smp's loop and recipe train "
                   "minunet's ResNet34UNet (drawn from the same seed) instead of smp.Unet")
    p.add_argument("--init", choices=["minunet", "conv1", "smp-rule"], default="minunet", help="a candidate for "
                   "minunet's network start, redrawn after new_model: conv1, the gray first convolution by "
                   "nn.Conv2d's default rule (as smp draws a first convolution of other than 3 channels); smp-rule, "
                   "that and the decoder and head by smp's rules (He uniform, Xavier, biases 0)")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                   help="paired per-image figures, B - A (several files of one side joined by commas)")
    args = p.parse_args(argv)
    if args.quick:
        args.folds, args.epochs, args.size, args.limit, args.seeds = 2, 1, 64, 48, [0]
    if args.smp_recipe:
        args.pooled_dice = args.own_stats = args.no_tta = True
    if not args.compare and not args.library:
        p.error("pass --library minunet or smp (or --compare A.json B.json)")
    return args


def machine():
    """The CPU's model name and the flags that decide its speed, torch's version and threads."""
    name, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        name = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1] for line in info.splitlines() if line.startswith("flags")).split()
        flags = " ".join(f for f in flags if f.startswith(("avx512", "amx", "avx2")))
    except (OSError, StopIteration):
        pass
    return dict(cpu=name, flags=flags, cores=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                capability=torch.backends.cpu.get_cpu_capability(), native_bf16=cpu_has_native_bf16())


def pool(args):
    """Every image of the folder (minunet's train and val splits together) at --size, unaugmented, with its
    mask at its own resolution: one LesionDataset, read by minunet's folder reader."""
    parts = [make_dataset("folder", split, args.data_root, args.size, limit=args.limit, classes=len(CLASSES),
                          channels=1) for split in ("train", "val")]
    return LesionDataset(torch.cat([p.images for p in parts]), torch.cat([p.masks for p in parts]),
                         parts[0].ids + parts[1].ids, original_masks=parts[0].original_masks + parts[1].original_masks,
                         classes=CLASSES, orientation=parts[0].orientation)


def folds_of(n, k, seed):
    """K lists of indices of range(n): a seeded shuffle cut into K nearly equal parts."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return [sorted(order[i::k]) for i in range(k)]


def split_validation(indices, seed):
    """(train, val): a seeded VAL_SHARE of `indices` chooses the best epoch, the rest train."""
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(1000 + seed)).tolist()
    n_val = max(1, round(VAL_SHARE * len(indices)))
    return sorted(indices[i] for i in order[n_val:]), sorted(indices[i] for i in order[:n_val])


def class_dice(pred, true, k):
    """Dice of each foreground class 1..k-1 of a class map against the truth (both (H, W) integer maps); NaN
    for a class in neither."""
    scores = []
    for c in range(1, k):
        p, t = pred == c, true == c
        denominator = int(p.sum()) + int(t.sum())
        scores.append(2 * int((p & t).sum()) / denominator if denominator else math.nan)
    return scores


# --- minunet: everything `minunet train` does, through the library --------------------------------------------

class StopAfter(Exception):
    """Raised after --stop-after epochs: the rest of the schedule is not trained."""


def run_minunet(data, train_ids, val_ids, held_out, seed, args, amp):
    """Train minunet's default recipe for the data; return (per-image class Dice of held_out, curve)."""
    from minunet.training.epoch import validation_inference
    from minunet.models import new_model
    from minunet.recipe import Recipe
    from minunet.training.loop import fit
    recipe = Recipe(model="resunet34", encoder_weights="none", size=args.size, epochs=args.epochs, seed=seed,
                    orientation=args.orientation, **({"loss": args.loss} if args.loss else {}),
                    **({"tta": False} if args.no_tta else {})).for_data(data)
    if args.no_warmup:  # the experiment: fit's schedule without its warm-up epoch
        import minunet.training.loop as loop_module
        loop_module.lr_factor = lambda step, warmup_steps, total_steps: 0.5 * (
            1 + math.cos(math.pi * min(1.0, step / total_steps)))
    if args.smp_recipe:  # smp's schedule: the cosine stepped once an epoch, from the peak
        import minunet.training.loop as loop_module
        loop_module.lr_factor = lambda step, warmup_steps, total_steps: 0.5 * (
            1 + math.cos(math.pi * (step * args.epochs // total_steps) / args.epochs))
    if args.pooled_dice:  # the experiment: smp's CE + soft Dice for the recipe's loss
        import segmentation_models_pytorch as smp
        from minunet.losses import LOSSES
        dice = smp.losses.DiceLoss("multiclass", classes=list(range(1, len(CLASSES))), from_logits=True)
        LOSSES[recipe.loss] = lambda: lambda logits, masks: F.cross_entropy(logits, masks[:, 0].long()) + dice(
            logits, masks[:, 0].long())
    if args.own_stats:  # the experiment: every dataset made from here on normalises with these
        import minunet.data.datasets as datasets_module
        import minunet.training.epoch as epoch_module
        x = data.images[train_ids].float() / 255
        stats = ((x.mean().item(),), (x.std().item(),))
        datasets_module.normalisation = epoch_module.normalisation = lambda channels: stats
        data = data.subset(range(len(data)))  # the pool again, with the new normalisation
    own_augmentation = not (args.no_augment or args.smp_recipe)
    train_set = data.subset(train_ids, augment=recipe.augmentation() if own_augmentation else False)
    if args.smp_recipe:  # smp's augmentation of the image in 0..1 (torch's global random stream), then the
        augment, normalise = smp_augmentation(), train_set.transform  # data's normalisation alone, as run_smp's
        train_set.transform = lambda image, mask: normalise(*augment(image.float() / 255, mask))
    val_set = data.subset(val_ids, augment=False)
    model, kept = new_model(recipe, data.spec), {}
    redraw(model, args.init)
    if args.smp_init:  # the same layers in the same order: smp's random start, tensor by tensor
        import segmentation_models_pytorch as smp
        torch.manual_seed(seed)  # as run_smp seeds before building its model
        ref = smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=len(CLASSES))
        pairs = list(zip(model.state_dict(), ref.state_dict().values()))
        assert len(pairs) == len(ref.state_dict()) == len(model.state_dict())
        model.load_state_dict({name: tensor for name, tensor in pairs})

    def keep_best(epoch):
        if epoch.best is not None:
            kept.update(state=copy.deepcopy(epoch.best.state_dict()), record=epoch.record)
        kept["history"] = epoch.history
        if epoch.number == args.stop_after:
            raise StopAfter

    try:
        fit(model, train_set, val_set, recipe, Runtime(precision=amp), on_epoch=keep_best, log=None)
    except StopAfter:
        pass
    history = kept["history"]
    model.load_state_dict(kept["state"])
    model.eval()
    inference = validation_inference(kept["record"], recipe, data.spec)  # validation's, as evaluate's from best.pt
    scores = []
    for i in held_out:
        image, _, *rest = data[i]
        truth = data.original_masks[i][0]  # (H, W) class indices at the mask's own resolution
        with torch.inference_mode():
            probs = inference.probabilities(model, image[None])  # (1, K, S, S)
        pred = inference.masks(probs, truth.shape)[0, 0]  # (H, W)
        scores.append(class_dice(pred, truth, len(CLASSES)))
    return scores, [row["val_dice"] for row in history]


def redraw(model, init):
    """Redraw parts of a ResNet34UNet's start by --init's rule (on torch's random stream, after new_model's
    draw): nothing for "minunet"; the first convolution by nn.Conv2d's default (He uniform with a = sqrt(5),
    fan in) for "conv1"; that, the decoder's convolutions by He uniform (fan in, ReLU), its BatchNorms at 1 and
    0 and the head by Xavier uniform with bias 0 for "smp-rule" (smp's initialize_decoder and initialize_head)."""
    if init == "minunet":
        return
    model.encoder.conv1.reset_parameters()
    if init == "smp-rule":
        for m in model.decoder.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
        torch.nn.init.xavier_uniform_(model.head.weight)
        torch.nn.init.zeros_(model.head.bias)


# --- smp: a plain recipe, written here without minunet -----------------------------------------------------------

def run_smp(data, train_ids, val_ids, held_out, seed, args, amp):
    """Train smp's Unet("resnet34") with the plain recipe; return (per-image class Dice of held_out, curve)."""
    import segmentation_models_pytorch as smp
    torch.manual_seed(seed)
    images = data.images.float() / 255  # (N, 1, S, S) in 0..1: the unaugmented images at --size
    masks = data.masks[:, 0].long()  # (N, S, S) class indices
    mean, std = images[train_ids].mean().item(), images[train_ids].std().item()  # the training images' own
    augment = smp_augmentation()
    if args.minunet_model:  # the diagnostic: minunet's network (the same layers as smp.Unet's), drawn here
        from minunet.models import new_model
        from minunet.recipe import Recipe
        model = new_model(Recipe(model="resunet34", encoder_weights="none", seed=seed), data.spec)
    else:
        model = smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=len(CLASSES))
    model = model.to(memory_format=torch.channels_last)
    dice = smp.losses.DiceLoss("multiclass", classes=list(range(1, len(CLASSES))), from_logits=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    amp_dtype = dict(bf16=torch.bfloat16, fp32=None)[amp]
    batch, generator = 16, torch.Generator().manual_seed(seed)
    best, best_state, curve = -1.0, None, []
    for epoch in range(args.stop_after or args.epochs):
        model.train()
        order = [train_ids[i] for i in torch.randperm(len(train_ids), generator=generator).tolist()]
        for start in range(0, len(order) - batch + 1, batch):  # the last short batch dropped
            pairs = [augment(images[i], masks[i][None]) for i in order[start:start + batch]]
            x = (torch.stack([p[0] for p in pairs]) - mean) / std  # (B, 1, S, S)
            y = torch.stack([p[1][0] for p in pairs]).long()  # (B, S, S)
            with torch.autocast("cpu", dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(x.contiguous(memory_format=torch.channels_last)).float()  # (B, K, S, S)
            loss = F.cross_entropy(logits, y) + dice(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        val = [mean_of(class_dice(p, masks[i], len(CLASSES)))
               for i, p in zip(val_ids, predict_smp(model, images, val_ids, mean, std, amp_dtype))]
        curve.append(sum(val) / len(val))
        if curve[-1] > best:
            best, best_state = curve[-1], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    truths = [data.original_masks[i][0] for i in held_out]
    preds = predict_smp(model, images, held_out, mean, std, amp_dtype, [t.shape for t in truths])
    return [class_dice(p, t, len(CLASSES)) for p, t in zip(preds, truths)], curve


def smp_augmentation():
    """smp's plain recipe's augmentation: (image (C, S, S), mask (1, S, S)) -> both flipped left-right (p 0.5),
    rotated up to 15 degrees (nearest, black fill) and the image's brightness and contrast jittered by 0.2
    (torchvision.transforms.v2, on torch's global random stream)."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2
    augment = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomRotation(15),
                          v2.ColorJitter(brightness=0.2, contrast=0.2)])
    return lambda image, mask: tuple(t.as_subclass(torch.Tensor) for t in augment(
        tv_tensors.Image(image), tv_tensors.Mask(mask)))


def predict_smp(model, images, ids, mean, std, amp_dtype, sizes=None):
    """Class maps of images[ids], one pass each, at --size or, given `sizes`, resized bilinearly to each."""
    model.eval()
    out = []
    with torch.inference_mode():
        for n, i in enumerate(ids):
            x = ((images[i][None] - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=amp_dtype, enabled=amp_dtype is not None):
                probs = torch.softmax(model(x).float(), 1)  # (1, K, S, S)
            if sizes is not None:
                probs = F.interpolate(probs, size=tuple(sizes[n]), mode="bilinear", align_corners=False)
            out.append(probs.argmax(1)[0])
    return out


def mean_of(values):
    """The mean of the values that are not NaN (NaN if none)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def cross_validate(args):
    data = pool(args)
    amp = "bf16" if cpu_has_native_bf16() else "fp32"
    run = dict(minunet=run_minunet, smp=run_smp)[args.library]
    result = dict(command=vars(args), machine=machine(), precision=amp, ids=data.ids, runs=[])
    print(json.dumps(result["machine"]))
    for k, held_out in enumerate(folds_of(len(data), args.folds, args.fold_seed)):
        if args.only_folds is not None and k not in args.only_folds:
            continue
        rest = [i for i in range(len(data)) if i not in set(held_out)]
        for seed in args.seeds:
            train_ids, val_ids = split_validation(rest, seed)
            start = time.perf_counter()
            scores, curve = run(data, train_ids, val_ids, held_out, seed, args, amp)
            seconds = time.perf_counter() - start
            result["runs"].append(dict(fold=k, seed=seed, seconds=seconds, curve=curve,
                                       images=[data.ids[i] for i in held_out], scores=scores))
            means = [mean_of([s[c] for s in scores]) for c in range(len(CLASSES) - 1)]
            print(f"fold {k} seed {seed}: " + ", ".join(f"{n} {m:.4f}" for n, m in zip(CLASSES[1:], means))
                  + f"; best val {max(curve):.4f} of {[round(v, 3) for v in curve[:3]]}...; {seconds:.0f} s",
                  flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f)
    return result


def joined(paths):
    """The runs of the result files `paths` (comma-separated) as one result."""
    results = []
    for path in paths.split(","):
        with open(path) as f:
            results.append(json.load(f))
    return dict(results[0], runs=[run for result in results for run in result["runs"]])


def per_image(result):
    """{(seed, image id): class scores} of a result."""
    return {(r["seed"], name): s for r in result["runs"] for name, s in zip(r["images"], r["scores"])}


def by_run(a, b):
    """Per class: B - A of each paired run's (fold, seed) mean over its held-out images, and their mean +- one
    standard error over runs. A run's random start and its course move every image of the fold together, so
    this error counts what the per-image one above leaves out: how much another seed would move the result."""
    runs_a = {(r["fold"], r["seed"]): r for r in a["runs"]}
    runs_b = {(r["fold"], r["seed"]): r for r in b["runs"]}
    pairs = [(runs_a[k], runs_b[k]) for k in sorted(set(runs_a) & set(runs_b))]
    print(f"{len(pairs)} paired runs (fold, seed); B - A of each run's mean, +- one standard error over runs:")
    for c, name in enumerate(CLASSES[1:] + ("mean",)):
        def run_mean(run):
            return mean_of([mean_of(s) if name == "mean" else s[c] for s in run["scores"]])
        d = [run_mean(rb) - run_mean(ra) for ra, rb in pairs]
        m, se = mean_and_error(d)
        print(f"  {name:10s} {m:+.4f} +- {se:.4f}   by run: " + " ".join(f"{x:+.4f}" for x in d))
    found = [(discovery(ra["curve"]), discovery(rb["curve"])) for ra, rb in pairs]
    print(f"  the epoch each run's validation mean first passes {FOUND} (the clavicles found), A -> B: "
          + " ".join(f"{ea}->{eb}" for ea, eb in found))
    if all(ea and eb for ea, eb in found):
        m, se = mean_and_error([eb - ea for ea, eb in found])
        print(f"  B - A: {m:+.2f} +- {se:.2f} epochs")


def mean_and_error(values):
    """The mean of the values and its standard error (NaN for fewer than two values)."""
    m = sum(values) / len(values)
    n = len(values)
    return m, math.sqrt(sum((x - m) ** 2 for x in values) / (n - 1) / n) if n > 1 else math.nan


FOUND = 0.7  # a validation mean above this needs the clavicles: lungs and heart alone hold it near 0.6


def discovery(curve):
    """The first epoch (from 1) whose validation mean passes FOUND; None if none does."""
    return next((epoch for epoch, value in enumerate(curve, start=1) if value > FOUND), None)


def compare(path_a, path_b):
    """Per class: A's and B's means over every (seed, held-out image), and B - A paired per image (the mean over
    seeds of each image's difference) +- one standard error over images."""
    a, b = joined(path_a), joined(path_b)
    sa, sb = per_image(a), per_image(b)
    pairs = sorted(set(sa) & set(sb))
    images = sorted({name for _, name in pairs})
    print(f"{len(pairs)} paired (seed, image) scores over {len(images)} images; B - A:")
    for c, name in enumerate(CLASSES[1:] + ("mean",)):
        def value(s):
            return mean_of(s) if name == "mean" else s[c]
        diffs = {}
        for seed, image in pairs:
            va, vb = value(sa[seed, image]), value(sb[seed, image])
            if not (math.isnan(va) or math.isnan(vb)):
                diffs.setdefault(image, []).append(vb - va)
        m, se = mean_and_error([sum(v) / len(v) for v in diffs.values()])
        ma = mean_of([value(sa[p]) for p in pairs])
        mb = mean_of([value(sb[p]) for p in pairs])
        print(f"  {name:10s} A {ma:.4f}  B {mb:.4f}  B - A {m:+.4f} +- {se:.4f}")
    by_run(a, b)
    for label, result in (("A", a), ("B", b)):
        seconds = [r["seconds"] for r in result["runs"]]
        print(f"  {label}: {len(seconds)} runs, {sum(seconds) / len(seconds):.0f} s each on average")


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.compare:
        compare(*arguments.compare)
    else:
        cross_validate(arguments)
