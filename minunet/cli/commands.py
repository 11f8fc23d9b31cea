"""What `minunet train`, `minunet evaluate` and `minunet predict` do, once their flags are parsed (parser.py).

Each builds the library's settings from the flags (a Recipe, an Inference, a Runtime), calls the library
(fit, evaluate, predict) and prints what it returns; everything else lives in the library.
"""
import json
import os
import sys
import warnings

import torch

from ..training import distributed
from ..atomic import write_atomically
from ..checkpoint import open_checkpoint
from ..data import dataset_for, make_dataset
from ..data.modality import ORIENTATIONS
from ..device import Runtime, usable_cores
from ..errors import DataError, TrainingError
from ..evaluation import evaluate
from ..inference import Inference
from ..losses import loss_name
from ..metrics import METRIC_NAMES
from ..models import new_model
from .paths import must_be_a_file_name, must_be_a_folder, must_be_writable, must_not_be_the_checkpoint
from .predict import Output, input_images, predict
from .flags import given, orientation_note, recipe_notes, recipe_of
from .report import check_report_folder, nan_as_null, rows_of, write_report
from .rundir import (DATA_DEFAULTS, DATA_FLAGS, RUN_FILES, RunFolder, carry_best, data_fingerprint, new_run,
                     resumed_run, save_checkpoint_copy, write_curves)
from ..training.epoch import epoch_line
from ..training.loop import LossNotFinite, fit


def say(message):
    """Print one line on stderr (progress and warnings; stdout keeps the results)."""
    sys.stderr.write(message + "\n")  # one write: lines of parallel processes never interleave
    sys.stderr.flush()


def train_command(args):
    """`minunet train`: the recipe of the flags (or of the run --resume continues), its data, then fit."""
    data_given = {k: getattr(args, k) for k in DATA_FLAGS if hasattr(args, k)}
    if "data_root" in data_given and data_given["data_root"] is not None:
        data_given["data_root"] = os.path.abspath(data_given["data_root"])  # a run's root holds from any folder
    if args.resume:
        recipe, run, resumed, model, out = resumed_run(args.resume, args.out, {**given(args), **data_given},
                                                       args.overwrite)
        if resumed.epoch >= recipe.epochs:  # finished: only history.csv and curves.png may lag behind last.pt
            finish(args.resume, out, resumed, recipe)
            return
        if run["data_root"] is not None and not os.path.isdir(run["data_root"]):
            raise DataError(f"the run's data root {run['data_root']} (from {args.resume}) is not a folder: pass "
                            f"--data-root DIR where its images are now")
    else:
        recipe, run, resumed = recipe_of(args), {**DATA_DEFAULTS, **data_given}, None
        out = args.out or os.path.join("runs", f"{recipe.model}-{run['data']}")
        new_run(out, args.overwrite)
        model = None  # built once the data say their channels and classes
    runtime = Runtime(args.device, run["precision"], args.workers)
    device, _ = runtime.choose()
    rank, world = distributed.join(device)
    workers_note(args.workers, say if rank == 0 else None)
    data = dict(limit=run["limit"], classes=run["classes"], channels=run["channels"])
    with distributed.first_process_per_machine_first(world):  # a missing npz is downloaded once per machine
        train_set = make_dataset(run["data"], "train", run["data_root"], recipe.size, augment=recipe.augmentation(),
                                 seed=recipe.seed, **data)
        val_set = make_dataset(run["data"], "val", run["data_root"], recipe.size, **data)
    recipe = recipe.for_data(train_set)  # "auto": which way up the data's images are (minunet.data.modality)
    notes = train_set.notes + val_set.notes + recipe_notes(recipe, train_set.spec, given(args)) + \
        orientation_note(recipe, run["data"], given(args))
    model = model or new_model(recipe, train_set.spec)  # its channels and classes are the data's
    run["data_ids"] = data_fingerprint(train_set, val_set)
    if resumed is not None and resumed.run.get("data_ids", run["data_ids"]) != run["data_ids"]:
        raise DataError(f"--data-root {run['data_root']} holds other images than the run was trained on: pass "
                        f"the folder of its own images, or start a new run")
    if rank == 0:
        for note in dict.fromkeys(notes):  # each once (train and val share most)
            say(f"note: {note}")
        if len(train_set.spec.classes) > 2:  # by name: classes.txt's, the dataset's own, or "class k"
            print(f"{len(train_set.spec.classes)} classes: {', '.join(train_set.spec.classes)}", flush=True)
        if resumed is not None and os.path.abspath(out) != os.path.dirname(os.path.abspath(args.resume)):
            carry_best(args.resume, out)  # the new folder starts with the best epoch so far
        if resumed is not None:  # history.csv and curves.png as last.pt has them (a kill may fall in between)
            write_curves(out, resumed.history, loss_name(recipe.loss, len(train_set.spec.classes)))
            print(f"resuming {args.resume} after epoch {resumed.epoch} of {recipe.epochs}", flush=True)
    folder = RunFolder(out, {k: run[k] for k in DATA_FLAGS + ("data_ids",)}) if rank == 0 else None
    try:
        history = fit(model, train_set, val_set, recipe, runtime, resume=resumed, on_epoch=folder,
                      log=lambda line: print(line, flush=True))
    except LossNotFinite as err:
        raise TrainingError(f"{err}, last.pt is kept as it was; try a lower --lr or --precision fp32") from None
    except KeyboardInterrupt:  # an epoch that last.pt holds is said, though ctrl-C came before its line
        if folder is not None and folder.unsaid is not None:
            print(epoch_line(folder.unsaid.history[-1], recipe.epochs, folder.unsaid.best is not None), flush=True)
        raise
    if rank == 0:  # under torchrun, rank 0 alone reports
        best = max(history, key=lambda row: row["val_dice"])
        print(f"best validation Dice {best['val_dice']:.4f} (Jaccard {best['val_jaccard']:.4f}) at epoch "
              f"{best['epoch']}; wrote {written_files(out)}")


def workers_note(workers, note=say):
    """--workers beyond the cores this process may use: one note of minunet's own (via `note`; None: none), and
    torch's warning, which DataLoader gives when it is made and again when it starts its workers, silenced."""
    cores = usable_cores()
    if workers is None or workers <= cores:
        return
    warnings.filterwarnings("ignore", r"This DataLoader will create \d+ worker processes", UserWarning)
    if note:
        core = "core" if cores == 1 else "cores"
        note(f"note: --workers {workers} starts {workers} DataLoader processes for the {cores} CPU {core} this "
             f"process may use: loading may run slower than with fewer, or stall; pass --workers {cores} or fewer")


def finish(resumed_from, out, last, recipe):
    """A resumed run with no epoch left (last: its last.pt's Checkpoint): history.csv and curves.png from last.pt
    (a kill may have come between them), and, into a new --out, copies of best.pt and last.pt."""
    if os.path.abspath(out) != os.path.dirname(os.path.abspath(resumed_from)):
        carry_best(resumed_from, out)
        save_checkpoint_copy(resumed_from, os.path.join(out, "last.pt"))
    write_curves(out, last.history, loss_name(recipe.loss, len(last.classes)))
    print(f"nothing to resume: {out} has finished all {recipe.epochs} epochs (history.csv and curves.png "
          f"rewritten from last.pt)")


def written_files(out):
    """'OUT/best.pt, last.pt, ...': the run's files that are in `out`."""
    return f"{out}/" + ", ".join(name for name in RUN_FILES if os.path.exists(os.path.join(out, name)))


def inference_of(args, checkpoint):
    """The checkpoint's Inference, with the flags --tta, --threshold and --postprocess that were given."""
    return Inference.of_checkpoint(checkpoint, tta=args.tta, threshold=args.threshold, postprocess=args.postprocess)


def evaluate_command(args):
    """`minunet evaluate`: the checkpoint's Inference with the flags given, evaluate, then --json, --figure and
    --report from what it returns."""
    checkpoint, model = open_checkpoint(args.checkpoint)
    if args.report:
        must_be_writable(args.report, "--report")
        check_report_folder(args.report)
    if args.json:
        must_not_be_the_checkpoint(args.json, "--json", args.checkpoint)
        must_be_a_file_name(args.json, "--json", "metrics.json", args.overwrite)
    if args.figure:
        from ..plots import check_figure_name  # matplotlib only when a figure is asked for

        must_not_be_the_checkpoint(args.figure, "--figure", args.checkpoint)
        must_be_a_file_name(args.figure, "--figure", "cases.png", args.overwrite)
        check_figure_name(args.figure, "--figure")
    dataset = dataset_for(checkpoint.spec, args.data, args.split, args.data_root, checkpoint.size, args.limit,
                          skip_unreadable=True)
    for message in dataset.skipped:
        say(f"skipped: {message}")
    for note in dataset.notes:
        say(f"note: {note}")
    inference = inference_of(args, checkpoint)
    workers_note(args.workers)
    scores = evaluate(model, dataset, inference, Runtime(args.device, args.precision, args.workers, args.batch_size),
                      pictures=bool(args.figure or args.report))
    skipped = f" ({len(dataset.skipped)} unreadable skipped)" if dataset.skipped else ""
    print(f"{scores['count']} images of {args.data} {args.split}{skipped}, scored at the ground truth's "
          f"resolution" + (":" if "per_class" not in scores else ", the mean over the foreground classes:"))
    for name in METRIC_NAMES:
        print(f"  {name:<18} {scores[name]:.4f}")
    for label, means in scores.get("per_class", {}).items():  # K > 2 classes: each class's own
        print(f"  {label:<18} " + "  ".join(f"{name} {means[name]:.4f}" for name in METRIC_NAMES[:2]))
    for label in scores.get("absent", ()):  # in no truth and no prediction: nothing to score (nan)
        say(f"note: class {label!r} is in no mask and no prediction of these images: its scores are left out (nan)")
    if args.json:
        classes = {key: scores[key] for key in ("per_class", "absent", "confusion") if key in scores}
        write_atomically(args.json, json.dumps(nan_as_null(  # a score that is NaN (nothing to score) is null
            {**{name: scores[name] for name in METRIC_NAMES + ("count",)}, **classes,
             "skipped": len(dataset.skipped)}), indent=2))
    if args.figure:
        draw_cases(scores, args.figure)
    if args.report:
        data = f"{args.data} ({args.data_root})" if args.data_root else args.data
        run = run_summary(args.checkpoint, checkpoint, inference, data=data, split=args.split,
                          images=scores["count"])
        pictures = dict(zip(scores["ids"], scores["pictures"]))
        path = write_report(args.report, run, rows_of(scores), pictures, scores, dataset.skipped)
        print(f"wrote {path} and per_image.csv")


def run_summary(path, checkpoint, inference, **more):
    """What a report says of the run at its top: the checkpoint (its path and Checkpoint), model, training,
    decision rule and `more` (the data, the split, the input, ...)."""
    best = float("nan") if checkpoint.best_dice is None else checkpoint.best_dice
    return {"checkpoint": path, "model": f"{checkpoint.model} {checkpoint.model_args}",
            "trained": f"epoch {'?' if checkpoint.epoch is None else checkpoint.epoch}, validation Dice {best:.4f}",
            **{k: v for k, v in more.items() if v is not None},
            **({"threshold": inference.threshold} if inference.thresholded else {"decision": "the most probable class"}),
            "test-time augmentation": f"on ({ORIENTATIONS[inference.orientation]['views']})" if inference.tta else "off",
            "post-processing": "largest region, holes filled" if inference.postprocess else "off"}


def draw_cases(scores, path, n=3):
    """The n worst and n best images by Dice, with their true and predicted masks as scored."""
    from ..plots import plot_cases

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
        check_report_folder(args.report)
    checkpoint, model = open_checkpoint(args.checkpoint)
    (paths, passed_over), inference = input_images(args.input), inference_of(args, checkpoint)
    result = predict(model, paths, args.output, inference,
                     Runtime(args.device, args.precision, batch_size=args.batch_size, compile=args.compile),
                     Output(args.overlay, args.overwrite, pictures=bool(args.report)))
    if result["gray"]:
        say(f"note: the model reads gray images: {result['gray']} colour image(s) were converted to gray by their "
            f"luma")
    skipped = passed_over + result["skipped"] + result["too_large"]
    for _, reason in skipped:
        say(f"skipped: {reason}")
    written, counts = result["written"], ((passed_over, "file(s) of --input that are not images to segment"),
                                          (result["skipped"], "unreadable image(s)"),
                                          (result["too_large"], "image(s) too large for the memory"))
    print(f"wrote {written} segmentation(s) to {args.output}" + "".join(
        f"; skipped {len(files)} {what}" for files, what in counts if files))
    if written == 0:
        raise DataError(f"none of the {len(paths)} image(s) in {args.input} could be read")
    if args.report:
        run = run_summary(args.checkpoint, checkpoint, inference, input=args.input, images=written)
        path = write_report(args.report, run, rows_of(result), result["pictures"], skipped=[r for _, r in skipped])
        print(f"wrote {path} and per_image.csv")

