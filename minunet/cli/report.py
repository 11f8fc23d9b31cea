"""Where the model fails: a per-image CSV and one HTML page that a person opens in a browser.

write_report(out_dir, run, rows, cases, scores) writes out_dir/per_image.csv (one row per image, COLUMNS) and
out_dir/report.html; `rows_of` makes the rows of evaluate's or predict's results. The page is plain HTML and CSS
with every figure and picture inside it as a PNG data URI: no script, no link, nothing to fetch, so it opens the
same offline, anywhere, and travels as one file. With scores (evaluate) it shows the metrics, the spread of Dice,
the worst and best images and the flagged ones; without scores (predict) it shows every image with its prediction,
the flagged ones first.
"""
import csv
import io
import os
import pathlib

from .. import plots
from ..atomic import write_together
from ..errors import DataError
from ..evaluation import THRESHOLDS
from .htmlparts import esc, img, picture_uri, png_uri
from ..pictures import COLOURS, class_colour, class_overlay, overlay
from ..metrics import METRIC_NAMES, METRICS, THRESHOLD_JACCARD

FULL_AREA = 0.99  # a prediction covering at least this fraction of the image is flagged "full prediction"
FAILURE_DICE = 2 * THRESHOLD_JACCARD / (1 + THRESHOLD_JACCARD)  # Jaccard 0.65 as a Dice: D = 2J / (1 + J)

FLAGS = {
    "empty prediction": "The model found no lesion: not one pixel of the image is predicted as lesion.",
    "full prediction": f"The prediction covers (almost, at least {FULL_AREA:.0%}) the whole image: "
                       "the model called everything lesion.",
    "empty ground truth": "The image has no lesion to find: its Dice is 1 only if the prediction is empty too.",
    "failed": f"Jaccard below {THRESHOLD_JACCARD}, the ISIC challenge's failure line: threshold_jaccard "
              "scores the image 0.",
}
SCORES = tuple(name for name in METRIC_NAMES if name != "threshold_jaccard")  # per image (it follows from jaccard)
COLUMNS = ("id", *SCORES, "lesion_area", "predicted_area", "flags")  # per_image.csv, as minunet 0.1.0 wrote it
REPORT_FILES = ("per_image.csv", "report.html")  # what --report DIR writes into DIR
WORST, BEST, WORST_PER_CLASS = 8, 4, 4
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em;
       color: #222; background: #fff; line-height: 1.4; }
h1 { border-bottom: 2px solid #4a78b0; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; text-align: left; vertical-align: top; }
tr:nth-child(even) { background: #f3f5f8; } th { background: #e2e8f0; }
p.how { color: #555; font-size: 0.92em; max-width: 60em; }
img.case { width: 150px; height: auto; } img.small { width: 100px; height: auto; }
figure { display: inline-block; margin: 4px; font-size: 0.85em; vertical-align: top; }
figcaption { max-width: 210px; word-wrap: break-word; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: middle; }
"""


def image_flags(predicted_area, lesion_area=None, jaccard=None):
    """The names of the FLAGS an image earns, in FLAGS' order.

    Areas are fractions of the image in [0, 1]; lesion_area and jaccard are None when there is no ground
    truth (predict), and then only the prediction's flags can be raised.
    """
    raised = {
        "empty prediction": predicted_area == 0,
        "full prediction": predicted_area >= FULL_AREA,
        "empty ground truth": lesion_area is not None and lesion_area == 0,
        "failed": jaccard is not None and jaccard < THRESHOLD_JACCARD,
    }
    return [name for name in FLAGS if raised[name]]


def rows_of(result):
    """The report's rows of evaluate()'s result (scores per image) or of predict()'s (predicted areas): one
    dict per image with its id, the COLUMNS it has and its flags."""
    if "per_image" not in result:  # predict
        return [dict(id=row["id"], predicted_area=row["predicted_area"], flags=image_flags(row["predicted_area"]))
                for row in result["rows"]]
    columns = {name: nan_as_null(values.tolist()) for name, values in result["per_image"].items()}  # NaN: a dash
    rows = [dict({name: values[k] for name, values in columns.items()}, id=i) for k, i in enumerate(result["ids"])]
    return [dict(row, flags=image_flags(row["predicted_area"], row["lesion_area"], row["jaccard"])) for row in rows]


def nan_as_null(value):
    """`value` (numbers in dicts and lists) with each NaN, a score with nothing to score, as None: shown as a
    dash, written empty in per_image.csv and as null in JSON."""
    if isinstance(value, dict):
        return {k: nan_as_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_as_null(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def _number(value, percent=False):
    """A score to 3 decimals, an area as a percentage, None as a dash."""
    if value is None:
        return "&ndash;"
    return f"{100 * value:.1f} %" if percent else f"{value:.3f}"


def write_report(out_dir, run, rows, cases, scores=None, skipped=()):
    """Write out_dir/per_image.csv and out_dir/report.html (making out_dir); return the HTML's path.

    run: ordered dict of label -> value shown at the top (run_summary: checkpoint, model, threshold, ...).
    rows: one dict per image with the COLUMNS keys (rows_of); for predict only id, predicted_area and flags
    (score columns absent or None are written empty); flags is a list of FLAGS names, written ";"-joined.
    cases: id -> (image (3, h, w) uint8, truth (h, w) bool or None, prediction (h, w) bool), the images that
    may be drawn, at a small size. scores: evaluate()'s result (its means and threshold sweep), or None for
    predictions. skipped: one line per image (or image and mask) left out, and why; listed on the page.
    The two files are written together (minunet.atomic): both replace the old ones, or neither does.
    An unwritable out_dir raises OSError.
    """
    scored = scores is not None
    body = _scored_page(run, rows, cases, scores) if scored else _prediction_page(run, rows, cases)
    if scored and "per_class" in scores:  # K > 2 classes: per class, the confusion matrix, the worst per class
        body += class_sections(scores, rows, cases)
    if skipped:
        items = "".join(f"<li>{esc(line)}</li>" for line in skipped)
        body += (f"\n<h2>Skipped: {len(skipped)}</h2>\n<p class=\"how\">Left out of this report, each with the "
                 f"reason:</p>\n<ul>{items}</ul>")
    title = "Evaluation report" if scored else "Prediction report"
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_report_folder(out_dir)
    write_together({out / "per_image.csv": _csv_text(rows), out / "report.html": page})  # both or neither
    return out / "report.html"


def _csv_text(rows):
    """The rows as CSV text with the COLUMNS (for K > 2 classes, each class's metrics before the flags, as
    "dice/<class>"): None and absent as empty, flags ";"-joined."""
    columns = (*COLUMNS[:-1], *(k for k in (rows[0] if rows else {}) if "/" in k), COLUMNS[-1])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        numbers = [row.get(name) for name in columns[1:-1]]  # floats (a 0-dim tensor too), or None
        flags = ";".join(row.get("flags") or [])
        writer.writerow([row["id"], *("" if v is None else float(v) for v in numbers), flags])
    return buf.getvalue()


def check_report_folder(folder, flag="--report"):
    """DataError when a file the report writes in `folder` (REPORT_FILES) is a folder: checked before any work,
    so that no file is replaced when another cannot be."""
    for name in REPORT_FILES:
        if os.path.isdir(os.path.join(folder, name)):
            raise DataError(f"{flag} {folder}: {os.path.join(folder, name)} is a folder: move it away, or pass "
                            f"another {flag}")


def _run_table(run):
    """The run's labels and values as a table."""
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in run.items())
    return f"<h2>Run</h2>\n<table>{cells}</table>"


def _legend(names):
    """A line naming each overlay colour."""
    swatches = [f'<span class="swatch" style="background: rgb{COLOURS[n]}"></span> {n}' for n in names]
    return "Overlay: " + ", ".join(swatches) + "."


def _scored_page(run, rows, cases, scores):
    """The body of the evaluation page: run, metrics, figures, worst and best cases, flagged images."""
    scored = [row for row in rows if row.get("dice") is not None]
    dices = [row["dice"] for row in scored]
    failed = sum(d < FAILURE_DICE for d in dices)
    metric_rows = "".join(f"<tr><th>{name}</th><td>{scores[name]:.4f}</td><td>{esc(definition)}</td></tr>"
                          for name, definition in METRICS.items())
    parts = [_run_table(run), "<h2>ISIC metrics</h2>",
             f"<table><tr><th>metric</th><th>mean</th><th>definition, per image</th></tr>{metric_rows}</table>",
             f'<p class="how">As the ISIC challenge scores them: each metric is computed per image from its pixel '
             f"counts (TP lesion found, FP false alarm, FN lesion missed, TN skin left alone), taken as 1 where "
             f"its denominator is 0, then averaged over the {len(scored)} images.</p>",
             "<h2>Per-image Dice</h2>", img(png_uri(lambda f: plots.plot_dice_histogram(dices, FAILURE_DICE, f)),
                                             "histogram of per-image Dice", "fig"),
             f'<p class="how">How many images reached each Dice. The dashed line is Dice {FAILURE_DICE:.3f}, the '
             f"Dice of Jaccard {THRESHOLD_JACCARD} (D = 2J / (1 + J)): images left of it fail the challenge's "
             f"threshold and score 0 there. {failed} of {len(dices)} images fail.</p>"]
    sized = [row for row in scored if row.get("lesion_area") is not None]
    if sized:
        areas, size_dices = [r["lesion_area"] for r in sized], [r["dice"] for r in sized]
        uri = png_uri(lambda f: plots.plot_dice_by_size(areas, size_dices, FAILURE_DICE, f))
        parts += ["<h2>Dice against lesion size</h2>", img(uri, "Dice against lesion area", "fig"),
                  '<p class="how">One dot per image: the fraction of the image its lesion covers (x) and its '
                  "Dice (y). Dots below the dashed line failed. Look for where they gather: small lesions are "
                  "hard because a few wrong pixels are a large part of them.</p>"]
    if "dice_by_threshold" in scores:
        thresholds, in_use = list(THRESHOLDS), run["threshold"]
        curve = [scores["dice_by_threshold"][t] for t in THRESHOLDS]
        best = max(range(len(curve)), key=lambda i: curve[i])
        uri = png_uri(lambda f: plots.plot_threshold_curve(list(thresholds), list(curve), in_use, f))
        parts += ["<h2>Dice against the decision threshold</h2>", img(uri, "mean Dice against threshold", "fig"),
                  f'<p class="how">The mean Dice if every pixel whose probability is above the threshold were '
                  f"called lesion. The dashed line marks the threshold in use ({in_use:g}); the best here is "
                  f"{thresholds[best]:g} (mean Dice {curve[best]:.4f}). A flat curve means the model is sure of "
                  f"its pixels. Choose a threshold on validation images, never on the test images.</p>"]
    order = sorted(scored, key=lambda row: (row["dice"], str(row["id"])))
    worst, best = order[:WORST], order[WORST:][::-1][:BEST]  # best: from the images not already shown
    parts += [f"<h2>Worst {len(worst)} images, lowest Dice first</h2>", _case_table(worst, cases, "worst")]
    if best:
        parts += [f"<h2>Best {len(best)} images, highest Dice first</h2>", _case_table(best, cases, "best")]
    parts += ["<h2>Flagged images</h2>", _flag_sections(rows, cases)]
    return "\n".join(parts)


def class_sections(scores, rows, cases):
    """For K > 2 classes, the HTML of the per-class sections of evaluate()'s `scores` (its "per_class" and
    "confusion"), with the report's rows (each with "dice/<class>") and cases ({id: (image, truth, prediction)},
    label maps)."""
    names = list(scores["per_class"])
    header = "".join(f"<th>{esc(name)}</th>" for name in METRIC_NAMES)
    lines = "".join(f"<tr><th>{swatch(c)} {esc(label)}</th>" + "".join(
        f"<td>{means[name]:.4f}</td>" for name in METRIC_NAMES) + "</tr>" for c, (label, means) in
        enumerate(scores["per_class"].items()))
    parts = ["<h2>Per class</h2>", f"<table><tr><th>class</th>{header}</tr>{lines}</table>",
             '<p class="how">Each class scored as its own mask (its pixels against all others), per image, then '
             "averaged over the images that hold it or predict it: a class in neither the truth nor the prediction "
             "of an image has nothing to score there and is left out (not scored 1). The metrics above are each "
             "image's mean over the foreground classes (all but the first) it scores.</p>",
             "<h2>Confusion matrix</h2>", confusion_table(names, scores["confusion"])]
    for c, label in enumerate(names[1:], start=1):
        scored = [row for row in rows if row.get(f"dice/{label}") is not None]  # None: not in this image
        worst = sorted(scored, key=lambda row: (row[f"dice/{label}"], str(row["id"])))[:WORST_PER_CLASS]
        parts.append(f"<h3>{swatch(c)} {esc(label)}: worst {len(worst)} images by its Dice</h3>")
        parts += [case_figure(row, cases, names, label) for row in worst]
    return "\n" + "\n".join(parts)


def swatch(c):
    """A small square in class c's colour."""
    return f'<span class="swatch" style="background: rgb{class_colour(c)}"></span>'


def confusion_table(names, confusion):
    """Pixels of each true class (row) predicted as each class (column), and the row's share in brackets."""
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    body = ""
    for label, row in zip(names, confusion):
        total = max(1, sum(row))
        body += f"<tr><th>{esc(label)}</th>" + "".join(f"<td>{v} ({v / total:.1%})</td>" for v in row) + "</tr>"
    return (f"<table><tr><th>true \\ predicted</th>{head}</tr>{body}</table>"
            '<p class="how">Pixel counts over all images scored; the bracket is the share of the row: where the '
            "pixels of each true class went.</p>")


def case_figure(row, cases, names, label):
    """A figure: the image's truth and prediction, each drawn in the class colours, with its Dice for `label`."""
    caption = f'<b class="id">{esc(row["id"])}</b><br>{esc(label)} Dice {row[f"dice/{label}"]:.3f}'
    pictures = ""
    if row["id"] in cases:
        image, truth, prediction = cases[row["id"]]
        for what, labels in (("truth", truth), ("prediction", prediction)):
            picture = class_overlay(image, labels, names)
            pictures += img(png_uri(lambda f: picture.save(f, format="PNG")), f"{row['id']} {what}", "case")
    return f"<figure>{pictures}<figcaption>{caption}</figcaption></figure>"


def _case_table(chosen, cases, name):
    """A table of image | ground truth | prediction | overlay, one row per chosen image, with its scores."""
    lines = [f'<p class="how">{_legend(["lesion found", "lesion missed", "false alarm"])} Ground truth and '
             f"prediction in white on black.</p>", f'<table id="{name}"><tr><th>image and scores</th><th>image'
             "</th><th>ground truth</th><th>prediction</th><th>overlay</th></tr>"]
    for row in chosen:
        scores = "<br>".join(f"{k} {_number(row.get(k))}" for k in SCORES)
        areas = (f"lesion {_number(row.get('lesion_area'), True)}<br>"
                 f"predicted {_number(row.get('predicted_area'), True)}")
        flags = "<br>".join(esc(f) for f in row.get("flags") or [])
        cells = [f'<td><b class="id">{esc(row["id"])}</b><br>{scores}<br>{areas}<br><i>{flags}</i></td>']
        if row["id"] in cases:
            image, truth, prediction = cases[row["id"]]
            pictures = [image, truth, prediction, overlay(image, truth, prediction)]
            labels = ("image", "ground truth", "prediction", "overlay")
            cells += ["<td>" + img(picture_uri(p), f"{row['id']} {label}", "case") + "</td>"
                      for p, label in zip(pictures, labels) if p is not None]
        else:
            cells.append('<td colspan="4">(not drawn: no picture of this image was passed)</td>')
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return "\n".join(lines) + "</table>"


def _thumbnail(row, cases, big=False):
    """A figure: the image's overlay (with the plain image first if big), its id, areas and flags."""
    caption = f'<b class="id">{esc(row["id"])}</b><br>predicted {_number(row.get("predicted_area"), True)}'
    if row.get("dice") is not None:
        caption += f", Dice {_number(row['dice'])}"
    if row.get("flags"):
        caption += "<br><i>" + esc(", ".join(row["flags"])) + "</i>"
    pictures = ""
    if row["id"] in cases:
        image, truth, prediction = cases[row["id"]]
        cls = "case" if big else "small"
        pictures = img(picture_uri(overlay(image, truth, prediction)), f"{row['id']} overlay", cls)
        if big:
            pictures = img(picture_uri(image), f"{row['id']} image", cls) + pictures
    return f"<figure>{pictures}<figcaption>{caption}</figcaption></figure>"


def _flag_sections(rows, cases):
    """For each flag: its sentence, how many images have it, and their ids with small overlays."""
    parts = []
    for name, sentence in FLAGS.items():
        flagged = [row for row in rows if name in (row.get("flags") or [])]
        parts.append(f"<h3>{esc(name)}: {len(flagged)} image{'s' if len(flagged) != 1 else ''}</h3>"
                     f'<p class="how">{esc(sentence)}</p>')
        parts += [_thumbnail(row, cases) for row in flagged]
    return "\n".join(parts)


def _prediction_page(run, rows, cases):
    """The body of the prediction page: run, the flags' meaning, then every image, the flagged ones first."""
    counts = {name: sum(name in (row.get("flags") or []) for row in rows) for name in FLAGS}
    meanings = "".join(f"<tr><th>{esc(name)}</th><td>{counts[name]}</td><td>{esc(sentence)}</td></tr>"
                       for name, sentence in FLAGS.items() if name in ("empty prediction", "full prediction"))
    order = sorted(rows, key=lambda row: (not row.get("flags"), str(row["id"])))
    return "\n".join([_run_table(run), "<h2>Flags</h2>",
                      f"<table><tr><th>flag</th><th>images</th><th>meaning</th></tr>{meanings}</table>",
                      f"<h2>{len(rows)} images, flagged ones first</h2>",
                      f'<p class="how">Each image, then the same image with the prediction over it. '
                      f'{_legend(["predicted lesion"])} Without ground truth nothing is scored: look for '
                      f"predictions that miss the lesion or spill onto the skin.</p>",
                      *(_thumbnail(row, cases, big=True) for row in order)])
