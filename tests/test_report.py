"""The failure report: flags, the per-image CSV, and a self-contained HTML page that a browser really renders."""
import base64
import csv
import html
import io
import json
import os
import re
import shutil
import subprocess
import time

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from minunet.cli import report
from minunet.evaluation import THRESHOLDS
from minunet.metrics import THRESHOLD_JACCARD, isic_metrics
from minunet.pictures import COLOURS, overlay
from minunet.cli.report import COLUMNS, FLAGS, image_flags, write_report

SIZE = 32
SCORES = ("dice", "jaccard", "accuracy", "sensitivity", "specificity")
IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"')


def disc(cx, cy, r):
    """A (SIZE, SIZE) bool disc."""
    y, x = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def make_images(n, seed=0):
    """n synthetic (id, image, truth, prediction): the prediction is the lesion shifted by i pixels, and a few
    special ones (empty prediction, full prediction, empty ground truth)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        coarse = torch.rand(1, 3, 8, 8, generator=g)  # smooth colourful pictures: random 8 x 8, enlarged
        image = (F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear") * 255).round().to(torch.uint8)[0]
        truth = disc(14, 16, 5 + i % 6)
        prediction = torch.roll(truth, shifts=i, dims=1)
        if i == 1:
            prediction = torch.zeros_like(truth)
        if i == 2:
            prediction = torch.ones_like(truth)
        if i == 3:
            truth = torch.zeros_like(truth)
        out.append((f"ISIC_{i:07d}", image, truth, prediction))
    return out


def scored_rows(images):
    """The rows and cases an evaluation passes to write_report, scored with minunet.metrics."""
    rows, cases = [], {}
    for image_id, image, truth, prediction in images:
        scores = isic_metrics(prediction[None, None], truth[None, None])
        row = {name: scores[name].item() for name in SCORES}
        row.update(id=image_id, lesion_area=truth.float().mean().item(),
                   predicted_area=prediction.float().mean().item())
        row["flags"] = image_flags(row["predicted_area"], row["lesion_area"], row["jaccard"])
        rows.append(row)
        cases[image_id] = (image, truth, prediction)
    return rows, cases


RUN = {"checkpoint": "runs/<best>.pt", "model": "unet", "split": "val", "threshold": 0.5}
CURVE = [0.6 + 0.01 * t for t in range(1, 20)]  # a mean Dice at each threshold of the sweep


def scores_of(rows, curve=None):
    """What evaluate() returns besides the rows, as write_report takes it: the mean of each metric over the
    rows (threshold_jaccard counted directly), and the threshold sweep when a curve is given."""
    means = {name: sum(row[name] for row in rows) / len(rows) for name in SCORES}
    means["threshold_jaccard"] = sum(row["jaccard"] if row["jaccard"] >= 0.65 else 0.0 for row in rows) / len(rows)
    if curve is not None:
        means["dice_by_threshold"] = dict(zip(THRESHOLDS, curve))
    return means


def decode_data_uri(src):
    assert src.startswith("data:image/png;base64,"), src[:60]
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
    image.load()  # decodes every pixel: a truncated or corrupt PNG raises here
    assert image.format == "PNG"
    return image


def section(page, table_id):
    """The ids, in order, of the rows of the case table with this id."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S).group(1)
    return [html.unescape(x) for x in re.findall(r'<b class="id">(.*?)</b>', table)]


@pytest.mark.parametrize("predicted,lesion,jaccard,expected", [
    (0.0, 0.2, 0.0, ["empty prediction", "failed"]),
    (1.0, 0.2, 0.2, ["full prediction", "failed"]),
    (0.99, 0.99, 1.0, ["full prediction"]),
    (0.989, 0.989, 1.0, []),
    (0.1, 0.0, 0.0, ["empty ground truth", "failed"]),
    (0.0, 0.0, 1.0, ["empty prediction", "empty ground truth"]),  # nothing to find, nothing found: Dice 1
    (0.3, 0.3, THRESHOLD_JACCARD, []),  # on the failure line is not a failure
    (0.3, 0.3, 0.6499, ["failed"]),
    (0.0, None, None, ["empty prediction"]),  # predict: no ground truth, so no score flags
    (1.0, None, None, ["full prediction"]),
    (0.5, None, None, []),
])
def test_image_flags(predicted, lesion, jaccard, expected):
    assert image_flags(predicted, lesion, jaccard) == expected


def test_flags_match_a_direct_reading_of_the_masks():
    for image_id, _, truth, prediction in make_images(12):
        jaccard = (truth & prediction).sum().item() / max((truth | prediction).sum().item(), 1)
        if not (truth | prediction).any():
            jaccard = 1.0
        expected = {name for name, raised in [("empty prediction", not prediction.any()),
                                              ("full prediction", prediction.float().mean() >= 0.99),
                                              ("empty ground truth", not truth.any()),
                                              ("failed", jaccard < 0.65)] if raised}
        got = image_flags(prediction.float().mean().item(), truth.float().mean().item(), jaccard)
        assert set(got) == expected, image_id
    assert set(FLAGS) == {"empty prediction", "full prediction", "empty ground truth", "failed"}
    assert all(sentence.endswith(".") and len(sentence) > 30 for sentence in FLAGS.values())
    assert abs(report.FAILURE_DICE - 2 * 0.65 / 1.65) < 1e-12  # 0.788: Jaccard 0.65 as a Dice


def test_overlay_tints_each_pixel_by_what_the_model_got_right():
    image, truth, prediction = make_images(6)[5][1:]
    out = overlay(image, truth, prediction)
    alone = overlay(image, None, prediction)
    assert out.dtype == torch.uint8 and out.shape == image.shape
    for y in range(SIZE):
        for x in range(SIZE):
            t, p = bool(truth[y, x]), bool(prediction[y, x])
            name = {(True, True): "lesion found", (True, False): "lesion missed", (False, True): "false alarm"}
            for picture, key in ((out, name.get((t, p))), (alone, "predicted lesion" if p else None)):
                pixel = image[:, y, x].tolist()
                if key:
                    pixel = [round(0.5 * a + 0.5 * b) for a, b in zip(pixel, COLOURS[key])]
                assert picture[:, y, x].tolist() == pixel, (y, x, key)


def test_csv_has_one_row_per_image_with_the_values_passed(tmp_path):
    rows, cases = scored_rows(make_images(10))
    rows[4]["id"] = 'odd, "quoted" <id>'
    cases[rows[4]["id"]] = cases.pop("ISIC_0000004")
    rows[5]["dice"] = torch.tensor(rows[5]["dice"])  # a 0-dim tensor is written as its number
    write_report(tmp_path, RUN, rows, cases, scores_of(rows))
    with open(tmp_path / "per_image.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        read = list(reader)
    assert len(read) == len(rows)
    for got, row in zip(read, rows):
        assert got["id"] == row["id"]
        for name in COLUMNS[1:-1]:
            assert float(got[name]) == row[name], name  # exactly: Python writes a float's shortest repr
        assert got["flags"] == ";".join(row["flags"])
    assert read[1]["flags"] == "empty prediction;failed"


def test_html_is_self_contained_and_every_picture_decodes(tmp_path):
    images = make_images(14)
    rows, cases = scored_rows(images)
    path = write_report(tmp_path, RUN, rows, cases, scores_of(rows, CURVE))
    assert path == tmp_path / "report.html"
    page = path.read_text(encoding="utf-8")
    for forbidden in ("<script", "http://", "https://", "<link", "<iframe", "url("):
        assert forbidden not in page.lower(), forbidden
    sources = IMG_SRC.findall(page)
    assert len(sources) == page.count("<img")
    decoded = [decode_data_uri(src) for src in sources]
    flagged = sum(len(row["flags"]) for row in rows)
    assert len(decoded) == 3 + 4 * 8 + 4 * 4 + flagged  # figures, worst, best, one overlay per flag raised
    assert [im.size for im in decoded[:3]] == [(640, 320)] * 3
    assert all(im.size == (SIZE, SIZE) for im in decoded[3:])
    assert "&lt;best&gt;" in page and "<best>" not in page  # the run's text is escaped
    for heading in ("Run", "ISIC metrics", "Per-image Dice", "Dice against lesion size",
                    "Dice against the decision threshold", "Flagged images"):
        assert f"<h2>{heading}</h2>" in page, heading
    mean_dice = sum(row["dice"] for row in rows) / len(rows)
    assert f"<tr><th>dice</th><td>{mean_dice:.4f}</td>" in page
    assert "0.788" in page and all(html.escape(s) in page for s in FLAGS.values())


def test_worst_cases_in_order_of_dice_then_the_best(tmp_path):
    rows, cases = scored_rows(make_images(14, seed=3))
    page = write_report(tmp_path, RUN, rows, cases, scores_of(rows)).read_text()
    by_dice = [row["id"] for row in sorted(rows, key=lambda r: (r["dice"], r["id"]))]
    assert section(page, "worst") == by_dice[:8]
    assert section(page, "best") == by_dice[::-1][:4]
    assert [rows[1]["id"]] == re.findall(r"<h3>empty prediction: 1 image</h3>.*?<b class=\"id\">(.*?)</b>",
                                         page, re.S)
    assert "Dice against the decision threshold" not in page  # no curve given, no curve drawn


def test_fewer_images_than_the_worst_eight_shows_them_all_once(tmp_path):
    rows, cases = scored_rows(make_images(5))
    page = write_report(tmp_path, RUN, rows, cases, scores_of(rows)).read_text()
    assert sorted(section(page, "worst")) == sorted(row["id"] for row in rows)
    assert '<table id="best">' not in page


def test_prediction_report_without_scores(tmp_path):
    images = make_images(7)
    rows = [{"id": i, "predicted_area": p.float().mean().item(), "flags": image_flags(p.float().mean().item())}
            for i, _, _, p in images]
    cases = {i: (image, None, p) for i, image, _, p in images}
    page = write_report(tmp_path, {"checkpoint": "best.pt", "images": 7}, rows, cases).read_text()
    assert "Prediction report" in page and "ISIC metrics" not in page and "Dice" not in page
    assert [decode_data_uri(s).size for s in IMG_SRC.findall(page)] == [(SIZE, SIZE)] * 14  # image, overlay
    shown = [html.unescape(x) for x in re.findall(r'<b class="id">(.*?)</b>', page)]
    assert shown[:2] == ["ISIC_0000001", "ISIC_0000002"]  # the flagged ones (empty, full) first
    assert sorted(shown) == sorted(row["id"] for row in rows)
    with open(tmp_path / "per_image.csv", newline="") as f:
        read = list(csv.DictReader(f))
    assert all(r[name] == "" for r in read for name in SCORES + ("lesion_area",))
    assert [r["flags"] for r in read[:3]] == ["", "empty prediction", "full prediction"]


def test_a_failed_write_leaves_the_previous_report(tmp_path, monkeypatch):
    rows, cases = scored_rows(make_images(9))
    write_report(tmp_path, RUN, rows, cases, scores_of(rows))
    before = {name: (tmp_path / name).read_bytes() for name in ("report.html", "per_image.csv")}

    def refuse(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path, {"checkpoint": "other.pt"}, rows[:3], cases, scores_of(rows[:3]))
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["per_image.csv", "report.html"]  # no .tmp left


def test_an_unwritable_out_dir_raises_oserror(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    rows, cases = scored_rows(make_images(2))
    with pytest.raises(OSError):
        write_report(tmp_path / "a_file" / "report", RUN, rows, cases, scores_of(rows))


PROBE = """<script>addEventListener("load", () => {
  const images = [...document.images].map(i => { const b = i.getBoundingClientRect();
    return [i.complete, i.naturalWidth, i.naturalHeight, b.left, b.top, b.width, b.height]; });
  document.body.dataset.probe = JSON.stringify({height: document.documentElement.scrollHeight, images});
});</script>"""


def chromium(tmp_path, *args):
    """Run headless Chromium (a fresh profile, no GPU, 1 CSS pixel = 1 screen pixel) and return its stdout."""
    exe = shutil.which("chromium")
    assert exe, "Chromium is missing: apt-get install chromium (.ci/run installs it)"
    result = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--hide-scrollbars", "--force-device-scale-factor=1",
                             f"--user-data-dir={tmp_path / 'profile'}", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_chromium_renders_the_report(tmp_path):
    rows, cases = scored_rows(make_images(12))
    page = write_report(tmp_path / "report", RUN, rows, cases, scores_of(rows, CURVE)).read_text()
    pngs = [decode_data_uri(src).convert("RGB") for src in IMG_SRC.findall(page)]

    # 1. the same page plus a probe script: did the browser decode each picture, where did it draw it,
    # and how tall is the page?
    start = time.perf_counter()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, "--window-size=1200,800", "--virtual-time-budget=10000", "--dump-dom",
                   probed.as_uri())
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the probe did not run: " + dom[-500:]
    probe = json.loads(html.unescape(found.group(1)))
    assert len(probe["images"]) == len(pngs)
    for (complete, natural_w, natural_h, *_), png in zip(probe["images"], pngs):
        assert complete and (natural_w, natural_h) == png.size  # decoded by the browser, at the PNG's size

    # 2. the report itself, in a window as tall as the page: a screenshot of every picture where it was drawn
    height = probe["height"]
    assert 2000 < height < 16000
    shot_path = tmp_path / "shot.png"
    chromium(tmp_path, f"--window-size=1200,{height}", f"--screenshot={shot_path}",
             (tmp_path / "report" / "report.html").as_uri())
    seconds = time.perf_counter() - start
    shot = Image.open(shot_path).convert("RGB")
    assert shot.size == (1200, height)
    assert len(shot.getcolors(1 << 24)) > 2000  # figures and pictures, not a blank page
    background = shot.getpixel((1195, 5))
    assert background == (255, 255, 255)
    differs = 0
    for (_, _, _, left, top, width, height_), png in zip(probe["images"], pngs):
        x, y, w, h = round(left), round(top), round(width), round(height_)
        drawn = shot.crop((x + 2, y + 2, x + w - 2, y + h - 2)).resize((8, 8), Image.BOX)  # 8 x 8 mean colours
        sent = png.resize((w, h), Image.BILINEAR).crop((2, 2, w - 2, h - 2)).resize((8, 8), Image.BOX)
        gaps = [abs(a - b) for a, b in zip(drawn.tobytes(), sent.tobytes())]  # per channel of each cell
        assert sum(gaps) / len(gaps) < 4, ((x, y, w, h), sum(gaps) / len(gaps))  # the picture is there, in place
        differs += set(drawn.tobytes()) != {255}  # not all page background (white)
    assert differs >= len(pngs) - 2  # at most the two all-white masks look like the background
    print(f"chromium: probe and screenshot of a {height} px page in {seconds:.1f} s")


# ---------------------------------------------------------------------------------------------------------
# The report of a real checkpoint through the command line: its numbers are evaluate's own

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "unet_v0.1.0.pt")


def test_evaluate_report_csv_holds_evaluates_own_numbers(tmp_path, capsys):
    from minunet.checkpoint import load_checkpoint, model_from_checkpoint
    from minunet.cli import main
    from minunet.data import make_dataset
    from minunet.device import Runtime
    from minunet.evaluation import evaluate

    flags = ["--checkpoint", FIXTURE, "--data", "synthetic", "--split", "val", "--limit", "12", "--device", "cpu"]
    assert main(["evaluate", *flags, "--json", str(tmp_path / "m.json"), "--report", str(tmp_path / "rep")]) == 0
    assert f"wrote {tmp_path / 'rep' / 'report.html'}" in capsys.readouterr().out
    means = json.loads((tmp_path / "m.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "rep" / "per_image.csv")))
    assert len(rows) == means["count"] == 12 and list(rows[0]) == list(COLUMNS)
    for name in ("dice", "jaccard", "accuracy", "sensitivity", "specificity"):
        assert sum(float(r[name]) for r in rows) / len(rows) == pytest.approx(means[name], abs=1e-6), name
    state = load_checkpoint(FIXTURE)
    dataset = make_dataset("synthetic", "val", size=state.size, limit=12)
    runtime = Runtime("cpu", "fp32", workers=0)  # the CLI's defaults (evaluate runs fp32 unless asked)
    scores = evaluate(model_from_checkpoint(state), dataset, runtime=runtime)
    assert [r["id"] for r in rows] == scores["ids"]
    for k, row in enumerate(rows):
        for name in ("dice", "jaccard", "lesion_area", "predicted_area"):
            assert float(row[name]) == pytest.approx(scores["per_image"][name][k].item(), abs=1e-6)
        expected = image_flags(float(row["predicted_area"]), float(row["lesion_area"]), float(row["jaccard"]))
        assert row["flags"] == ";".join(expected)
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<script" not in page and FIXTURE in html.unescape(page)


def test_predict_report_lists_every_image_with_its_area(tmp_path, capsys):
    from minunet.cli import main

    samples = os.path.join(os.path.dirname(__file__), "..", "docs", "samples")
    assert main(["predict", "--checkpoint", FIXTURE, "--input", samples, "--output", str(tmp_path / "masks"),
                 "--device", "cpu", "--report", str(tmp_path / "rep")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "rep" / "per_image.csv")))
    assert sorted(r["id"] for r in rows) == ["lesion_1", "lesion_2", "lesion_3"]
    for row in rows:  # the predicted area is the mask predict wrote, at the image's own size
        mask = Image.open(tmp_path / "masks" / f"{row['id']}_Segmentation.png")
        area = sum(1 for v in mask.tobytes() if v) / (mask.size[0] * mask.size[1])
        assert float(row["predicted_area"]) == pytest.approx(area, abs=1e-6) and row["dice"] == ""


def test_the_report_files_are_readable_as_every_other_output(tmp_path):
    # issue 34, case 12: report.html and per_image.csv were written 0600 (mkstemp's), every other output 0644
    rows, cases = scored_rows(make_images(3))
    before = os.umask(0o022)
    try:
        write_report(tmp_path, RUN, rows, cases, scores_of(rows))
        os.umask(0o077)  # a stricter umask is kept
        write_report(tmp_path / "private", RUN, rows, cases, scores_of(rows))
    finally:
        os.umask(before)
    for name in ("report.html", "per_image.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "private" / name).stat().st_mode & 0o777 == 0o600
