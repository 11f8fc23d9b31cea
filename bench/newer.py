"""Two recipes over several seeds, on the folds and on a newer collection; and accuracy against minutes.

Reads the JSON files of bench/accuracy.py runs made with --newer (ISIC 2017's 150 validation images beside
the 749 held-out ISIC 2016 images). Two summaries:

    # recipe B against recipe A, seed by seed (the files in the same seed order), then over the seeds
    python bench/newer.py --paired bench/out/s7_base_{0,1,2}.json --against bench/out/s7_new_{0,1,2}.json
    # an inference option inside the same runs: FILE:VARIANT, as accuracy.py --compare takes it
    python bench/newer.py --paired bench/out/s7_base_0.json:plain --against bench/out/s7_base_0.json:tta

    # the newer collection's Jaccard after 5, 10 and 20 minutes of training (runs made with --newer-curve)
    python bench/newer.py --minutes bench/out/s7_base_0.json bench/out/s7_new_0.json

A seed's paired difference is the mean over images of B - A (held-out: every one of the 749 images, scored by
the fold model that did not train on it; newer: each of the 150 images, scored by the mean of the fold
models), over the folds both runs trained (with --max-folds 1, fold 1's 375 images and model). Over the seeds: the mean of those differences, with two standard errors: over seeds (their standard
deviation / sqrt(seeds)) and over images (sqrt(sum of the seeds' squared standard errors) / seeds).
"""
import argparse
import json
import math

from accuracy import mean, mean_se, newer_image, per_image, sd, split_variant

MARKS = (5, 10, 20)  # minutes


def load(path):
    """(result, variant) of 'run.json' or 'run.json:VARIANT' (None: the recipe's own scores)."""
    path, variant = split_variant(path)
    with open(path) as f:
        return json.load(f), variant


def scores(result, variant, name, check):
    """{image id: score} of one run on one check: 'held-out' (the folds) or 'newer'."""
    if check == "held-out":
        return per_image(result, name, variant)
    return newer_image(result, name, variant or "own")


def paired(a_paths, b_paths):
    """Print B - A seed by seed on both checks, then the mean over seeds with both standard errors."""
    if len(a_paths) != len(b_paths):
        raise SystemExit("newer.py: --paired and --against need as many files each (one per seed)")
    runs = [(load(a), load(b)) for a, b in zip(a_paths, b_paths)]
    for check in ("held-out", "newer"):
        for name in ("dice", "jaccard"):
            diffs, errors, a_means, b_means = [], [], [], []
            for (a, a_var), (b, b_var) in runs:
                a, b = common_folds(a, b)
                x, y = scores(a, a_var, name, check), scores(b, b_var, name, check)
                shared = sorted(set(x) & set(y))
                d, se = mean_se([y[i] - x[i] for i in shared])
                diffs.append(d), errors.append(se)
                a_means.append(mean([x[i] for i in shared])), b_means.append(mean([y[i] for i in shared]))
                print(f"{check:8} {name:7} seed {a['command']['seed']}: A {a_means[-1]:.4f}, B {b_means[-1]:.4f}, "
                      f"B - A {d:+.4f} +- {se:.4f} ({len(shared)} images)")
            m, se_seeds = mean_se(diffs)  # nan over one seed
            se_images = math.sqrt(sum(e * e for e in errors)) / len(errors)
            print(f"{check:8} {name:7} over {len(diffs)} seed(s): A {mean(a_means):.4f} (sd {sd(a_means):.4f}), "
                  f"B {mean(b_means):.4f} (sd {sd(b_means):.4f}), B - A {m:+.4f}, standard error {se_seeds:.4f} "
                  f"over seeds, {se_images:.4f} over images")


def common_folds(a, b):
    """Both runs cut to the folds both trained (a --max-folds 1 run against a whole one: fold 1's models)."""
    both = {f["fold"] for f in a["folds"]} & {f["fold"] for f in b["folds"]}
    return tuple(dict(r, folds=[f for f in r["folds"] if f["fold"] in both]) for r in (a, b))


def minutes(paths, undisturbed=False):
    """The newer collection's mean Jaccard at the last epoch each fold had finished by MARKS minutes of training
    (the sum of its epochs' training seconds: fit's validation and the bench's scoring left out). undisturbed:
    every epoch counted at the fold's fastest epoch instead, the machine's speed when nothing else ran (for
    runs that shared the cores: an estimate, said so)."""
    for path in paths:
        result, _ = load(path)
        folds = result["folds"]
        if "newer_jaccard" not in folds[0]["history"][0]:
            raise SystemExit(f"newer.py: {path} has no curve: run bench/accuracy.py with --newer-curve")
        for fold in folds:  # the clock: the epochs' training passes (the bench validates more than train does)
            fastest, clock = min(row["train_seconds"] for row in fold["history"]), 0.0
            for row in fold["history"]:
                clock += fastest if undisturbed else row["train_seconds"]
                row["training_seconds"] = clock
        cells = []
        for mark in MARKS:
            reached = [[r for r in f["history"] if r["training_seconds"] <= mark * 60] for f in folds]
            if not all(reached):
                cells.append(f"{mark} min: no epoch yet")
                continue
            jaccard = mean([rows[-1]["newer_jaccard"] for rows in reached])
            epochs = "/".join(str(rows[-1]["epoch"]) for rows in reached)
            cells.append(f"{mark} min: {jaccard:.4f} (epoch {epochs})")
        total = [f["history"][-1]["training_seconds"] / 60 for f in folds]
        extra = f", {result['extra']} extra training images" if result.get("extra") else ""
        clock = "at its fastest epoch's pace (an estimate)" if undisturbed else "as measured"
        print(f"{path}: newer Jaccard {'; '.join(cells)}; the folds trained for "
              f"{', '.join(f'{t:.1f}' for t in total)} min, {clock} ({result['machine']}{extra})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paired", nargs="+", metavar="JSON", help="recipe A's runs, one per seed")
    parser.add_argument("--against", nargs="+", metavar="JSON", help="recipe B's runs, in the same seed order")
    parser.add_argument("--minutes", nargs="+", metavar="JSON", help="runs made with --newer-curve")
    parser.add_argument("--undisturbed", action="store_true", help="with --minutes: count every epoch at the "
                        "fold's fastest, for runs that shared the machine (an estimate)")
    args = parser.parse_args()
    if args.paired:
        paired(args.paired, args.against or [])
    if args.minutes:
        minutes(args.minutes, args.undisturbed)
    if not (args.paired or args.minutes):
        parser.error("give --paired A... --against B..., or --minutes JSON...")


if __name__ == "__main__":
    main()
