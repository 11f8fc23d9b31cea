"""Accuracy by cross-validation: K folds of the training images, each held out once, paired across recipes.

The pool is every image of the training folder (train + val of the challenge layout: 749 at hand). A seed
(--fold-seed) shuffles it into K folds; fold k trains on the other K-1 (augmented) and is scored on fold k,
the final epoch's weights (no epoch is chosen on the held-out images), at each mask's own resolution. After
each epoch fit validates on the fold's first 75 held-out images (MONITORED: the history and its "best epoch"
line; before 13ad451 of 2026-12-02, all of them), which changes nothing in training. Two
recipes run with the same --fold-seed and --seed see the same images in the same order: their per-image
differences are paired. Writes a JSON with each fold's history and every held-out image's scores.

    python bench/accuracy.py --folds 3 --json bench/out/cv_new.json        # the library's recipe (minunet.recipe)
    python bench/accuracy.py --folds 3 --loss bce_dice --no-tta --json bench/out/cv_base.json    # 0.1.0's recipe
    python bench/accuracy.py --folds 3 --model smp --json bench/out/cv_smp.json    # smp's Unet("resnet34")
    python bench/accuracy.py --compare bench/out/cv_base.json bench/out/cv_new.json                # paired figures
    python bench/accuracy.py --folds 2 --max-folds 1 --model unet --base-channels 32 ...   # one paired fold

The recipe flags are minunet train's (minunet.recipe), with the same defaults except two: --model resunet34
and --encoder-weights none (ImageNet weights cannot be downloaded here). Before 203a4a0 (2026-12-02) it had its
own defaults, 0.1.0's recipe (--loss bce_dice, one pass, --base-channels 32): commands recorded in
bench/RESULTS.md without those flags ran that recipe.
    python bench/accuracy.py --data synthetic --folds 2 --epochs 1 --limit 16 --json /tmp/cv.json  # a smoke run

Each fold's final model is also scored under every inference option (VARIANTS: flips averaged, largest region
kept and holes filled, a tuned threshold), so one training run gives their paired effects. The tuned threshold
is cross-fitted: fold k is scored at the threshold with the best mean Dice on the other folds' held-out images,
never on its own.
"""
import argparse
import json
import math
import os
import platform
import time

import torch

from dataclasses import asdict

from minunet.cli.flags import add_recipe_flags, recipe_of
from minunet.recipe import Recipe
from minunet.data.catalog import dataset_names
from minunet.data import LesionDataset, make_dataset
from minunet.device import Runtime, cpu_has_native_bf16
from minunet.evaluation import THRESHOLDS, best_threshold, evaluate
from minunet.inference import Inference
from minunet.models import MODELS, ModelEntry, new_model
from minunet.training.loop import fit
from minunet.transforms import normalisation


def smp_unet(recipe, spec):
    """segmentation_models_pytorch's Unet("resnet34") from scratch: the reference the benchmarks compare with."""
    import segmentation_models_pytorch as smp
    return smp.Unet("resnet34", encoder_weights=None, in_channels=spec.channels, classes=spec.outputs)


BENCH = Recipe(model="resunet34", encoder_weights="none")  # the recipe's defaults, from scratch


def pool_of(args, recipe):
    """Every training image (the train and val splits together), unaugmented, in one LesionDataset."""
    parts = [make_dataset(args.data, split, args.data_root, recipe.size, limit=args.limit)
             for split in ("train", "val")]
    originals = None if parts[0].original_masks is None else parts[0].original_masks + parts[1].original_masks
    return LesionDataset(torch.cat([p.images for p in parts]), torch.cat([p.masks for p in parts]),
                         parts[0].ids + parts[1].ids, seed=recipe.seed, original_masks=originals,
                         classes=parts[0].spec.classes)


def folds_of(n, k, seed):
    """K lists of indices of range(n): a seeded shuffle cut into K nearly equal parts."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return [sorted(order[i::k]) for i in range(k)]


MONITORED = 75  # held-out images fit validates after each epoch (as minunet train's 75): its history, not a score
VARIANTS = {"plain": dict(tta=False), "tta": dict(tta=True), "postprocess": dict(tta=False, postprocess=True),
            "tta+postprocess": dict(tta=True, postprocess=True)}  # name: the Inference options evaluate scores
TUNED = {"threshold": "plain", "tta+threshold": "tta"}  # a cross-fitted threshold over that variant's sweep


def with_extra(pool, args, recipe):
    """The pool followed by the ISIC 2017 training images in --extra DIR that the pool does not hold (by id):
    (dataset, how many of its items are the pool's). Only the pool is cut into folds; every fold also trains
    on the extra images, which no fold holds out."""
    if not args.extra:
        return pool, len(pool)
    extra = make_dataset("isic2017", "train", args.extra, recipe.size)
    held = set(pool.ids)
    keep = [i for i, name in enumerate(extra.ids) if name not in held]
    originals = None if pool.original_masks is None else pool.original_masks + [extra.original_masks[i] for i in keep]
    both = LesionDataset(torch.cat([pool.images, extra.images[keep]]), torch.cat([pool.masks, extra.masks[keep]]),
                         pool.ids + [extra.ids[i] for i in keep], seed=recipe.seed, original_masks=originals)
    return both, len(pool)


def newer_curve(model, newer, inference, runtime, curve, log=print):
    """fit's `log`: after each epoch, also score `model` on the newer collection and append the epoch's mean
    Dice and Jaccard to `curve` (fit's own elapsed_seconds leave this scoring out)."""
    def log_and_score(line):
        log(line)
        scores = evaluate(model, newer, inference, runtime)
        curve.append(dict(dice=mean(scores["per_image"]["dice"].tolist()),
                          jaccard=mean(scores["per_image"]["jaccard"].tolist())))
    return log_and_score


def cross_validate(args):
    recipe = recipe_of(args, BENCH)
    runtime = Runtime(precision=args.precision)
    pool, augment = pool_of(args, recipe), recipe.augmentation()
    data, n_pool = with_extra(pool, args, recipe)
    newer = make_dataset("isic2017", "val", args.newer, recipe.size) if args.newer else None
    result = dict(command=dict(vars(args), **asdict(recipe)), machine=machine(), folds=[], extra=len(data) - n_pool)
    for k, held_out in enumerate(folds_of(n_pool, args.folds, args.fold_seed)[:args.max_folds]):
        held = set(held_out)
        train_ids = [i for i in range(len(data)) if i not in held]
        train_set, val_set = data.subset(train_ids, augment=augment), pool.subset(held_out, augment=False)
        model, start, curve = new_model(recipe, pool.spec), time.perf_counter(), []
        log = newer_curve(model, newer, Inference(tta=recipe.tta), runtime, curve) \
            if args.newer_curve else print
        monitor = val_set.subset(range(min(MONITORED, len(val_set))))  # fit's per-epoch check; never chooses
        history = fit(model, train_set, monitor, recipe, runtime, log=log)
        minutes = (time.perf_counter() - start) / 60
        fold = dict(fold=k, minutes=minutes, history=[
            {key: value for key, value in row.items() if key != "dice_by_threshold"} for row in history])
        for row, point in zip(fold["history"], curve):  # the newer collection's scores after each epoch
            row.update(newer_dice=point["dice"], newer_jaccard=point["jaccard"])
        fold["variants"], fold["sweeps"], fold["ids"] = scores_of_variants(model, val_set, runtime)
        fold.update(fold["variants"]["tta" if recipe.tta else "plain"])  # the recipe's own scores
        if newer is not None:  # the same model on a newer collection: ISIC 2017's validation images
            fold["newer"], fold["newer_sweeps"], result["newer_ids"] = scores_of_variants(model, newer, runtime)
            fold["newer"]["own"] = fold["newer"]["tta" if recipe.tta else "plain"]
        result["folds"].append(fold)
        print(f"fold {k + 1}/{args.folds}: final-epoch Dice {mean(fold['dice']):.4f} Jaccard "
              f"{mean(fold['jaccard']):.4f} (best epoch on {len(monitor)} of them {max(r['val_dice'] for r in history):.4f}), "
              f"{minutes:.1f} min",
              flush=True)
        add_tuned_thresholds(result)
        with open(args.json, "w") as f:
            json.dump(result, f)
    summarise(result)


def scores_of_variants(model, dataset, runtime):
    """`model` on `dataset` with each of VARIANTS: ({variant: each image's Dice and Jaccard}, {variant without
    post-processing: each image's Dice at every threshold, (images, len(THRESHOLDS))}, the images' ids)."""
    mean_std = dict(zip(("mean", "std"), normalisation(dataset.spec.channels)))
    scores, sweeps = {}, {}
    for name, options in VARIANTS.items():
        scored = evaluate(model, dataset, Inference(**options, **mean_std, spec=dataset.spec), runtime)
        scores[name] = dict(dice=scored["per_image"]["dice"].tolist(), jaccard=scored["per_image"]["jaccard"].tolist())
        if not options.get("postprocess"):
            sweeps[name] = scored["dice_sweep"].tolist()
    return scores, sweeps, scored["ids"]


def newer_image(result, name, variant="own"):
    """{newer image id: its `name` score, the mean over the folds' models} (every fold scores every image)."""
    folds = result["folds"]
    return {i: mean([f["newer"][variant][name][k] for f in folds]) for k, i in enumerate(result["newer_ids"])}


def add_tuned_thresholds(result):
    """Once every fold has run: each TUNED variant, fold k at the threshold best on the other folds' images."""
    folds = result["folds"]
    if len(folds) < 2 or len(folds) < result["command"]["folds"]:
        return
    for name, source in TUNED.items():
        for fold in folds:
            best = chosen_index([row for f in folds if f is not fold for row in f["sweeps"][source]])
            fold["variants"][name] = at_threshold(fold["sweeps"][source], best)
            if "newer_sweeps" in fold:  # the newer images at the same threshold, chosen on the folds' images
                fold["newer"][name] = at_threshold(fold["newer_sweeps"][source], best)


def at_threshold(sweep, best):
    """Each image's Dice and Jaccard at THRESHOLDS[best], from its row of `sweep` (Dice at every threshold)."""
    dice = [row[best] for row in sweep]
    # one image's Jaccard from its Dice D: J = D / (2 - D), as J = |A and B| / |A or B| and
    # D = 2 |A and B| / (|A| + |B|), where |A or B| = |A| + |B| - |A and B|
    return dict(dice=dice, jaccard=[d / (2 - d) for d in dice], threshold=THRESHOLDS[best])


def chosen_index(sweep_rows):
    """The index in THRESHOLDS that train's --tune-threshold would choose on these images' Dice sweeps."""
    return THRESHOLDS.index(best_threshold({t: mean([row[k] for row in sweep_rows]) for k, t in enumerate(THRESHOLDS)}))


SMALL_SPLIT, DRAWS = 75, 200  # minunet train's validation images; draws of that many


def small_split_thresholds(result, source, n=SMALL_SPLIT, draws=DRAWS):
    """Fold k's Dice change when the threshold is chosen on n random images of the other folds, as train's
    --tune-threshold chooses on its 75 validation images: one difference from 0.5 per seeded draw."""
    folds, half = result["folds"], THRESHOLDS.index(0.5)
    others = [[row for f in folds if f is not fold for row in f["sweeps"][source]] for fold in folds]
    images = sum(len(f["ids"]) for f in folds)
    g, changes = torch.Generator().manual_seed(0), []
    for _ in range(draws):
        change = 0.0
        for fold, pool in zip(folds, others):
            best = chosen_index([pool[i] for i in torch.randperm(len(pool), generator=g)[:n].tolist()])
            change += sum(row[best] - row[half] for row in fold["sweeps"][source])
        changes.append(change / images)
    return changes


def mean(values):
    return sum(values) / len(values)


def sd(values):
    """The sample standard deviation of `values` (nan for fewer than two)."""
    if len(values) < 2:
        return float("nan")
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def mean_se(values):
    """The mean of `values` and its standard error."""
    return mean(values), sd(values) / math.sqrt(len(values))


def per_image(result, name, variant=None):
    """{image id: its `name` score} over every fold: the recipe's own, or that of one of VARIANTS or TUNED."""
    return {i: v for fold in result["folds"]
            for i, v in zip(fold["ids"], fold["variants"][variant][name] if variant else fold[name])}


def summarise(result):
    dice, jaccard = per_image(result, "dice"), per_image(result, "jaccard")
    (d, d_se), (j, j_se) = mean_se(list(dice.values())), mean_se(list(jaccard.values()))
    fold_means = [sum(f["dice"]) / len(f["dice"]) for f in result["folds"]]
    minutes = [f["minutes"] for f in result["folds"]]
    print(f"{len(dice)} held-out images: Dice {d:.4f} +- {d_se:.4f}, Jaccard {j:.4f} +- {j_se:.4f} (standard errors "
          f"over images); fold means {', '.join(f'{m:.4f}' for m in fold_means)}; {sum(minutes) / len(minutes):.1f} "
          f"min a fold; {result['machine']}")
    plain = per_image(result, "dice", "plain")
    for name in result["folds"][0]["variants"]:
        other = per_image(result, "dice", name)
        diff, diff_se = mean_se([other[i] - plain[i] for i in plain])
        thresholds = [f["variants"][name]["threshold"] for f in result["folds"] if "threshold" in f["variants"][name]]
        print(f"  inference {name:16} Dice {mean(list(other.values())):.4f}, {diff:+.4f} +- {diff_se:.4f} over plain"
              + (f" (thresholds {', '.join(map(str, thresholds))})" if thresholds else ""))
    if len(result["folds"]) >= 2:
        for name, source in TUNED.items():
            changes = sorted(small_split_thresholds(result, source))
            low, high = changes[len(changes) // 20], changes[-1 - len(changes) // 20]
            print(f"  inference {name:16} chosen on {SMALL_SPLIT} images ({DRAWS} draws): {mean(changes):+.4f} over "
                  f"0.5 on average, {low:+.4f} to {high:+.4f} (90 % of draws)")
    if "newer_ids" in result:
        (d, d_se), (j, j_se) = (mean_se(list(newer_image(result, name).values())) for name in ("dice", "jaccard"))
        print(f"  newer collection, {len(result['newer_ids'])} ISIC 2017 validation images (each image's mean over "
              f"the {len(result['folds'])} fold models): Dice {d:.4f} +- {d_se:.4f}, Jaccard {j:.4f} +- {j_se:.4f}")
        plain = newer_image(result, "dice", "plain")
        for name in [n for n in result["folds"][0]["newer"] if n != "own"]:  # VARIANTS, and TUNED where scored
            diff, diff_se = mean_se([v - plain[i] for i, v in newer_image(result, "dice", name).items()])
            print(f"  newer {name:16} Dice {diff:+.4f} +- {diff_se:.4f} over plain")
    for f in result["folds"]:
        reached = next((r for r in f["history"] if r["val_dice"] >= 0.90), None)
        print(f"  fold {f['fold'] + 1}: monitored held-out Dice first >= 0.90 " + (
            f"at epoch {reached['epoch']}, {reached['elapsed_seconds'] / 60:.1f} min" if reached else "never"))


def split_variant(path):
    """'run.json:tta' -> ('run.json', 'tta'); a path that exists as given (C:\\runs\\a.json) has no variant."""
    if os.path.exists(path) or ":" not in path:
        return path, None
    path, _, variant = path.rpartition(":")
    return path, variant


def compare(a_path, b_path):
    """Paired differences of B - A; a path may end in :VARIANT (a.json:tta) to compare one inference option."""
    (a_path, a_variant), (b_path, b_variant) = (split_variant(p) for p in (a_path, b_path))
    a, b = (json.load(open(path)) for path in (a_path, b_path))
    for name in ("dice", "jaccard"):
        x, y = per_image(a, name, a_variant), per_image(b, name, b_variant)
        shared = sorted(set(x) & set(y))
        diff, diff_se = mean_se([y[i] - x[i] for i in shared])
        print(f"{name}: {b_path}:{b_variant or 'own'} - {a_path}:{a_variant or 'own'} = {diff:+.4f} +- {diff_se:.4f} "
              f"(paired over {len(shared)} images)")
        if "newer_ids" in a and "newer_ids" in b and all((v or "own") in r["folds"][0]["newer"]
                                                         for v, r in ((a_variant, a), (b_variant, b))):
            x, y = newer_image(a, name, a_variant or "own"), newer_image(b, name, b_variant or "own")
            diff, diff_se = mean_se([y[i] - x[i] for i in sorted(set(x) & set(y))])
            print(f"{name} on the newer collection: {diff:+.4f} +- {diff_se:.4f} (paired over {len(x)} images)")
    for path, result in ((a_path, a), (b_path, b)):
        summarise(result)
        epoch = [sum(r["train_seconds"] for r in f["history"]) / len(f["history"]) for f in result["folds"]]
        print(f"  {path}: {sum(epoch) / len(epoch):.1f} s of training an epoch")


def spread(paths):
    """Each run's held-out (and newer-collection) mean Dice, then their mean and standard deviation over runs."""
    rows = []
    for path in paths:
        result = json.load(open(path))
        held = mean(list(per_image(result, "dice").values()))
        newer = mean(list(newer_image(result, "dice").values())) if "newer_ids" in result else float("nan")
        rows.append((held, newer))
        print(f"{path} (seed {result['command']['seed']}): held-out Dice {held:.4f}, newer {newer:.4f}")
    for k, what in enumerate(("held-out", "newer")):
        values = [row[k] for row in rows]
        m = mean(values)
        print(f"{what}: mean {m:.4f}, sd {sd(values):.4f} over {len(values)} runs (lowest {min(values):.4f}, highest "
              f"{max(values):.4f})")


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return (f"{cpu}, {torch.get_num_threads()} threads, native bf16 {'yes' if cpu_has_native_bf16() else 'no'}, "
            f"torch {torch.__version__}")


def main():
    MODELS["smp"] = ModelEntry(torch.nn.Module, smp_unet)  # --model smp: trained here, never checkpointed
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, metavar="JSON", help="paired differences of two runs' results (B - A); "
                        "JSON:VARIANT compares one inference option, e.g. base.json:tta")
    parser.add_argument("--data", default="isic2016", choices=dataset_names() + ("folder", "synthetic"),
                        metavar="NAME", help="a MedSegBench name (default isic2016), folder or synthetic")
    parser.add_argument("--data-root", default="../shared/data/isic2016")
    add_recipe_flags(parser)  # --model, --size, --epochs, --loss, --tta, ...: minunet train's recipe flags
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument("--max-folds", type=int, help="train only the first N folds (a paired check on fewer images)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--newer", metavar="DIR", help="also score every fold's model on the ISIC 2017 validation "
                        "images in DIR (the challenge's folders): a newer collection than the folds'")
    parser.add_argument("--newer-curve", action="store_true", help="with --newer: score the newer collection "
                        "after every epoch too (time-to-accuracy; the minutes leave that scoring out)")
    parser.add_argument("--extra", metavar="DIR", help="every fold also trains on the ISIC 2017 training images "
                        "in DIR that the pool does not hold (949 of the 1,695 at hand): what more data buys")
    parser.add_argument("--spread", nargs="+", metavar="JSON", help="the mean and spread over runs of one recipe "
                        "with other --seed values: held-out and newer-collection Dice")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", default="bench/out/cv.json")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    elif args.spread:
        spread(args.spread)
    else:
        cross_validate(args)


if __name__ == "__main__":
    main()
