"""The benchmarks are scripts, not tests: these runs in their tiny modes keep them working."""
import os
import re
import subprocess
import sys

import pytest

from minunet.evaluation import THRESHOLDS

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench")
pytest.importorskip("segmentation_models_pytorch")
pytestmark = pytest.mark.slow  # each runs a benchmark script end to end


def run(*argv):
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def load_script(name):
    """A bench script as a module, to call its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed_runs_in_tiny_mode():
    out = run(os.path.join(BENCH, "speed.py"), "--tiny")
    for line in ("smp.Unet(resnet34)", "minunet.ResNet34UNet", "plain U-Net", "minunet.UNet", "peak memory",
                 "+ channels_last", "BatchNorm folded", "minunet fit (--precision auto)", "minunet predict",
                 "data pipeline", "peak tensor memory"):
        assert line in out, line
    assert out.count(" x") >= 8  # every comparison printed its ratio
    tensor_memory = [line for line in out.split("peak tensor memory")[1].splitlines() if line.endswith(" MiB")]
    assert len(tensor_memory) == 4  # both pairs, training and inference


def test_accuracy_cross_validates_in_tiny_mode(tmp_path):
    import json

    result = tmp_path / "cv.json"
    out = run(os.path.join(BENCH, "accuracy.py"), "--data", "synthetic", "--folds", "2", "--epochs", "1", "--limit",
              "16", "--size", "64", "--batch-size", "4", "--json", str(result))
    assert sum(line.startswith("fold ") for line in out.splitlines()) == 2 and "held-out images: Dice" in out
    folds = json.loads(result.read_text())["folds"]
    held_out = [i for fold in folds for i in fold["ids"]]
    assert len(held_out) == len(set(held_out)) == 32  # 16 train + 16 val images, each held out exactly once
    for fold in folds:  # every inference option scored on each fold's model; the threshold never on its own images
        assert set(fold["variants"]) == {"plain", "tta", "postprocess", "tta+postprocess", "threshold", "tta+threshold"}
        assert fold["dice"] == fold["variants"]["tta"]["dice"] and len(fold["sweeps"]["tta"]) == len(fold["ids"])
        other = [row for f in folds if f is not fold for row in f["sweeps"]["plain"]]
        by_threshold = [sum(row[t] for row in other) / len(other) for t in range(19)]
        chosen = round(fold["variants"]["threshold"]["threshold"] / 0.05) - 1  # its index among 0.05, 0.10, ...
        assert by_threshold[chosen] == max(by_threshold)
    compared = run(os.path.join(BENCH, "accuracy.py"), "--compare", str(result), str(result))
    assert "dice: " in compared and "+0.0000 +- 0.0000 (paired over 32 images)" in compared
    compared = run(os.path.join(BENCH, "accuracy.py"), "--compare", str(result), f"{result}:tta")
    assert "+0.0000 +- 0.0000 (paired over 32 images)" in compared  # the recipe's own scores: flip TTA, its default
    assert compared.count("chosen on 75 images (200 draws)") == 2 * 2  # both tuned variants, in both summaries
    accuracy = load_script("accuracy")  # with every other image to choose on, a draw is the cross-fitted choice
    half = accuracy.THRESHOLDS.index(0.5)
    cross_fitted = [d - row[half] for f in folds
                    for d, row in zip(f["variants"]["threshold"]["dice"], f["sweeps"]["plain"])]
    assert accuracy.small_split_thresholds(dict(folds=folds), "plain", n=10 ** 6, draws=3) == [
        pytest.approx(sum(cross_fitted) / len(cross_fitted))] * 3
    colon = tmp_path / "run:1.json"  # a colon in a real path (a Windows drive, say) is not a variant
    colon.write_text(result.read_text())
    assert "+0.0000 +- 0.0000 (paired over 32 images)" in run(os.path.join(BENCH, "accuracy.py"), "--compare",
                                                                str(colon), f"{result}:tta")


def test_feed_compares_the_loop_with_the_model_alone():
    out = run(os.path.join(BENCH, "feed.py"), "--data", "synthetic", "--sizes", "64", "--epochs", "1", "--steps",
              "1", "--batch-size", "4", "--limit", "8")
    row = [line for line in out.splitlines() if line.startswith("| 64 |")]
    assert len(row) == 1 and row[0].endswith("% |")


def test_threads_measures_one_tiny_training():
    rate, threads = run(os.path.join(BENCH, "threads.py"), "--worker", "1", "--seconds", "0.2").split()
    assert float(rate) > 0 and threads == "1"
    assert f"{os.cpu_count()} cores, flags " in load_script("threads").cpu_description()


def test_step_profile_takes_one_step_apart():
    out = run(os.path.join(BENCH, "step_profile.py"), "--model", "unet", "--base-channels", "4", "--batch-size", "2",
              "--steps", "1")
    assert "unet at 32 px, batch 2, fp32" in out and "cores, flags " in out
    timed = re.search(r"seconds a step: forward ([\d.]+), backward ([\d.]+), optimizer ([\d.]+); total ([\d.]+)", out)
    parts = [float(x) for x in timed.groups()]
    assert all(t > 0 for t in parts) and abs(sum(parts[:3]) - parts[3]) <= 0.002, timed.group(0)
    assert "convolution backward:" in out and out.count(" calls  input [2, ") == 5  # the five costliest shapes


def test_ctrl_c_sweep_counts_how_runs_ended():
    out = run(os.path.join(BENCH, "ctrl_c.py"), "--runs", "1", "--start", "3", "--end", "3")
    assert out.splitlines()[-1] == "   1 of 1: exit 130, the one line", out


def test_accuracy_scores_every_fold_model_on_a_newer_collection_and_spreads_over_seeds(tmp_path):
    import json

    from test_challenges import challenge

    newer = challenge(tmp_path / "isic2017", "isic2017", size=(48, 36))  # 3 validation images
    runs = []
    for seed in ("0", "1"):
        runs.append(tmp_path / f"cv{seed}.json")
        out = run(os.path.join(BENCH, "accuracy.py"), "--data", "synthetic", "--folds", "2", "--epochs", "1",
                  "--limit", "8", "--size", "32", "--model", "unet", "--base-channels", "4", "--batch-size", "4",
                  "--seed", seed, "--newer", str(newer), "--json", str(runs[-1]))
        assert "newer collection, 3 ISIC 2017 validation images" in out
    result = json.loads(runs[-1].read_text())  # the run whose summary is `out`
    assert len(result["newer_ids"]) == 3 and all(len(f["newer"]["tta"]["dice"]) == 3 for f in result["folds"])
    by_hand = sum(sum(f["newer"]["tta"]["dice"][k] for f in result["folds"]) / 2 for k in range(3)) / 3
    assert f"Dice {by_hand:.4f} +-" in out.split("newer collection")[1]  # each image: the mean of the 2 fold models
    for fold in result["folds"]:  # the tuned threshold, chosen on the other fold's held-out images, applied there
        tuned, threshold = fold["newer"]["tta+threshold"], fold["variants"]["tta+threshold"]["threshold"]
        assert tuned["threshold"] == threshold
        assert tuned["dice"] == [row[THRESHOLDS.index(threshold)] for row in fold["newer_sweeps"]["tta"]]
    assert "newer tta+threshold" in out
    compared = run(os.path.join(BENCH, "accuracy.py"), "--compare", str(runs[0]), str(runs[0]) + ":tta+threshold")
    assert "dice on the newer collection: " in compared
    compared = run(os.path.join(BENCH, "accuracy.py"), "--compare", str(runs[0]), str(runs[0]))
    assert "dice on the newer collection: +0.0000 +- 0.0000 (paired over 3 images)" in compared
    spread = run(os.path.join(BENCH, "accuracy.py"), "--spread", *map(str, runs))
    assert "over 2 runs" in spread and spread.count("held-out Dice") == 2


def test_accuracy_trains_on_extra_images_and_scores_the_newer_collection_after_every_epoch(tmp_path):
    import json

    from test_challenges import COUNTS, challenge

    isic2017 = challenge(tmp_path / "isic2017", "isic2017", size=(48, 36))
    runs = [tmp_path / "plain.json", tmp_path / "extra.json"]
    for path, flags in zip(runs, ([], ["--extra", str(isic2017)])):
        run(os.path.join(BENCH, "accuracy.py"), "--data", "synthetic", "--folds", "2", "--epochs", "2", "--limit", "8",
            "--size", "32", "--model", "unet", "--base-channels", "4", "--batch-size", "4", "--newer", str(isic2017),
            "--newer-curve", *flags, "--json", str(path))
    plain, extra = (json.loads(path.read_text()) for path in runs)
    assert plain["extra"] == 0 and extra["extra"] == COUNTS["train"]  # no synthetic id is an ISIC one
    assert [f["ids"] for f in plain["folds"]] == [f["ids"] for f in extra["folds"]]  # the same held-out images
    for fold in extra["folds"]:  # the curve's last point is the final model's own score on the newer images
        assert [row["epoch"] for row in fold["history"]] == [1, 2]
        final = sum(fold["newer"]["own"]["jaccard"]) / len(fold["newer"]["own"]["jaccard"])
        assert abs(fold["history"][-1]["newer_jaccard"] - final) < 1e-6
    newer = os.path.join(BENCH, "newer.py")
    last = sum(f["history"][-1]["newer_jaccard"] for f in extra["folds"]) / 2
    assert f"5 min: {last:.4f} (epoch 2/2)" in run(newer, "--minutes", str(runs[1]))
    assert "at its fastest epoch's pace (an estimate)" in run(newer, "--minutes", str(runs[1]), "--undisturbed")
    paired = run(newer, "--paired", str(runs[0]), "--against", str(runs[0]))
    assert paired.count("B - A +0.0000 +- 0.0000") == 4 and "(3 images)" in paired  # a run against itself
    assert "held-out dice    seed 0" in run(newer, "--paired", str(runs[0]), "--against", str(runs[1]))


def test_xray_runs_both_libraries_and_pairs_them_by_image_and_by_run(tmp_path):
    from test_orientation import gray_folder

    root = gray_folder(tmp_path / "xrays", n=48)
    files = {}
    for library in ("minunet", "smp"):
        files[library] = str(tmp_path / f"{library}.json")
        out = run(os.path.join(BENCH, "xray.py"), "--library", library, "--quick", "--data-root", str(root),
                  "--json", files[library])
        assert out.count("seed 0: lungs") == 2  # both folds
    out = run(os.path.join(BENCH, "xray.py"), "--compare", files["smp"], files["minunet"])
    assert "48 paired (seed, image) scores over 48 images" in out
    assert "2 paired runs (fold, seed)" in out
    assert re.search(r"clavicles +[-+]\d\.\d{4} \+- \d\.\d{4} +by run: [-+]\d\.\d{4} [-+]\d\.\d{4}", out), out
    assert "first passes 0.7" in out
    xray = load_script("xray")
    assert xray.discovery([0.1, 0.6, 0.71, 0.9]) == 3 and xray.discovery([0.1, 0.7]) is None
