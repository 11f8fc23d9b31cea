"""What `minunet train`, `minunet evaluate` and `minunet predict` do, once their flags are parsed (cli.py).

Each builds the library's settings from the flags (a Recipe, an Inference, a Runtime), calls the library
(fit, evaluate, predict) and prints what it returns; everything else lives in the library.
"""
import json
import os
import sys

import torch

from . import distributed
from .checkpoint import open_checkpoint
from .data import make_dataset
from .device import Runtime
from .errors import DataError
from .evaluation import evaluate
from .inference import Inference
from .metrics import METRIC_NAMES
from .models import new_model
from .paths import must_be_a_file_name, must_be_a_folder, must_be_writable
from .predict import Output, input_images, predict
from .recipe import given, recipe_of
from .report import rows_of, write_report
from .rundir import DATA_FLAGS, new_run, resumed_run, write_curves
from .train import fit


def say(message):
    """Print one line on stderr (progress and warnings; stdout keeps the results)."""
    sys.stderr.write(message + "\n")  # one write: lines of parallel processes never interleave
    sys.stderr.flush()


def train_command(args):
    """`minunet train`: the recipe of the flags (or of the run --resume continues), its data, then fit."""
    if args.resume:
        recipe, run, state, model, out = resumed_run(args.resume, args.out, given(args), args.overwrite)
        if state["epoch"] >= recipe.epochs:  # finished: only history.csv and curves.png may lag behind last.pt
            write_curves(out, state["history"], recipe.loss)
            print(f"nothing to resume: {out} has finished all {recipe.epochs} epochs (history.csv and curves.png "
                  f"rewritten from last.pt)")
            return
    else:
        recipe, run, state = recipe_of(args), {k: getattr(args, k) for k in DATA_FLAGS}, None
        out = args.out or os.path.join("runs", f"{recipe.model}-{args.data}")
        new_run(out, args.overwrite)
        model = new_model(recipe)
    runtime = Runtime(args.device, run["precision"], args.workers)
    device, _ = runtime.choose()
    rank, world = distributed.join(device)
    with distributed.first_process_per_machine_first(world):  # a missing npz is downloaded once per machine
        train_set = make_dataset(run["data"], "train", run["data_root"], recipe.size, augment=recipe.augmentation(),
                                 seed=recipe.seed, limit=run["limit"])
        val_set = make_dataset(run["data"], "val", run["data_root"], recipe.size, limit=run["limit"])
    if rank == 0:
        for note in dict.fromkeys(train_set.notes + val_set.notes):  # each once (train and val share most)
            say(f"note: {note}")
    history = fit(model, train_set, val_set, out, recipe, runtime, resume=state,
                  run_info={k: run[k] for k in DATA_FLAGS}, log=lambda line: print(line, flush=True))
    if rank == 0:  # under torchrun, rank 0 alone reports
        best = max(history, key=lambda row: row["val_dice"])
        print(f"best validation Dice {best['val_dice']:.4f} (Jaccard {best['val_jaccard']:.4f}) at epoch "
              f"{best['epoch']}; wrote {out}/best.pt, last.pt, history.csv, curves.png")


def inference_of(args, state):
    """The checkpoint's Inference, with the flags --tta, --threshold and --postprocess that were given."""
    return Inference.of_checkpoint(state, tta=args.tta, threshold=args.threshold, postprocess=args.postprocess)


def evaluate_command(args):
    """`minunet evaluate`: the checkpoint's Inference with the flags given, evaluate, then --json, --figure and
    --report from what it returns."""
    state, model = open_checkpoint(args.checkpoint)
    if args.report:
        must_be_writable(args.report, "--report")
    if args.json:
        must_be_a_file_name(args.json, "--json", "metrics.json")
    if args.figure:
        must_be_a_file_name(args.figure, "--figure", "cases.png")
    dataset = make_dataset(args.data, args.split, args.data_root, state["size"], limit=args.limit,
                           skip_unreadable=True)
    for message in dataset.skipped:
        say(f"skipped: {message}")
    for note in dataset.notes:
        say(f"note: {note}")
    inference = inference_of(args, state)
    scores = evaluate(model, dataset, inference, Runtime(args.device, workers=args.workers,
                                                         batch_size=args.batch_size),
                      pictures=bool(args.figure or args.report))
    skipped = f" ({len(dataset.skipped)} unreadable skipped)" if dataset.skipped else ""
    print(f"{scores['count']} images of {args.data} {args.split}{skipped}, scored at the ground truth's "
          f"resolution:")
    for name in METRIC_NAMES:
        print(f"  {name:<18} {scores[name]:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**{name: scores[name] for name in METRIC_NAMES + ("count",)}, "skipped": len(dataset.skipped)},
                      f, indent=2)
    if args.figure:
        draw_cases(scores, args.figure)
    if args.report:
        data = f"{args.data} ({args.data_root})" if args.data_root else args.data
        run = run_summary(args.checkpoint, state, inference, data=data, split=args.split, images=scores["count"])
        pictures = dict(zip(scores["ids"], scores["pictures"]))
        path = write_report(args.report, run, rows_of(scores), pictures, scores)
        print(f"wrote {path} and per_image.csv")


def run_summary(checkpoint, state, inference, **more):
    """What a report says of the run at its top: the checkpoint, model, training, decision rule and `more`
    (the data, the split, the input, ...)."""
    return {"checkpoint": checkpoint, "model": f"{state['model']} {state['model_args']}",
            "trained": f"epoch {state.get('epoch', '?')}, validation Dice {state.get('best_dice', float('nan')):.4f}",
            **{k: v for k, v in more.items() if v is not None}, "threshold": inference.threshold,
            "test-time augmentation": "on" if inference.tta else "off",
            "post-processing": "largest region, holes filled" if inference.postprocess else "off"}


def draw_cases(scores, path, n=3):
    """The n worst and n best images by Dice, with their true and predicted masks as scored."""
    from .plots import plot_cases

    dice = scores["per_image"]["dice"]
    order = torch.argsort(dice).tolist()
    picked = order[:n] + order[-n:] if len(order) > 2 * n else order
    images, masks, preds = zip(*(scores["pictures"][i] for i in picked))
    plot_cases(images, masks, preds, path, [f"{scores['ids'][i]} Dice {dice[i]:.3f}" for i in picked])


def predict_command(args):
    """`minunet predict`: the checkpoint's Inference with the flags given, predict, then --report."""
    must_be_a_folder(args.output, "--output")
    if args.report:
        must_be_writable(args.report, "--report")
    state, model = open_checkpoint(args.checkpoint)
    paths, inference = input_images(args.input), inference_of(args, state)
    result = predict(model, paths, args.output, inference,
                     Runtime(args.device, batch_size=args.batch_size, compile=args.compile),
                     Output(args.overlay, args.overwrite, pictures=bool(args.report)))
    for _, reason in result["skipped"]:
        say(f"skipped: {reason}")
    written, skipped = result["written"], result["skipped"]
    print(f"wrote {written} segmentation(s) to {args.output}" + (f"; skipped {len(skipped)} unreadable "
                                                                  f"image(s)" if skipped else ""))
    if written == 0:
        raise DataError(f"none of the {len(paths)} image(s) in {args.input} could be read")
    if args.report:
        run = run_summary(args.checkpoint, state, inference, input=args.input, images=written)
        path = write_report(args.report, run, rows_of(result), result["pictures"])
        print(f"wrote {path} and per_image.csv")

