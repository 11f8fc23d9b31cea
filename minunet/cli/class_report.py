"""The report's sections for K > 2 classes (minunet.cli.report adds them to the evaluation page): each class's mean
metrics, the confusion matrix between classes, and each class's worst images by its own Dice, drawn with one
colour per class."""
from .htmlparts import esc, img, png_uri
from ..metrics import METRIC_NAMES
from ..pictures import class_colour, class_overlay

WORST_PER_CLASS = 4


def class_sections(scores, rows, cases):
    """The HTML of the per-class sections of evaluate()'s `scores` (its "per_class" and "confusion"), with the
    report's rows (each with "dice/<class>") and cases ({id: (image, truth, prediction)}, label maps)."""
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
