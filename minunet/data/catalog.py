"""MedSegBench's datasets by name, as the installed medsegbench package describes them, and what a dataset's
images and labels are (`DataSpec`: colour channels and class names).

The catalogue is medsegbench.info.INFO, read from the installed package (never copied here): the literal in its
info.py, without running any of the package (its __init__ imports NumPy and the dataset classes).
"""
import ast
import functools
import importlib.util
import os
from dataclasses import dataclass

BINARY = ("background", "lesion")  # the classes of a binary dataset that does not name them (ISIC, 0.1.0's runs)


@dataclass(frozen=True)
class DataSpec:
    """What a dataset's images and labels are: channels (1 gray or 3 colour) and the name of each class, the
    background first. Two classes are the binary path (one logit, sigmoid); K > 2 classes give K logits."""
    channels: int = 3
    classes: tuple = BINARY

    @property
    def outputs(self):
        """The model's output channels: 1 logit for two classes (binary), else one per class."""
        return 1 if len(self.classes) == 2 else len(self.classes)


def numbered(k):
    """The class names of a label map with k classes and no names: background, class 1, ..., class k-1."""
    return ("background",) + tuple(f"class {i}" for i in range(1, k))


@functools.lru_cache(maxsize=1)
def medsegbench_info():
    """medsegbench.info.INFO, {name: its record}, read from the installed package's info.py as the literal it
    is (nothing of the package runs: it would import NumPy, and make ~/.medsegbench); {} when it is missing."""
    spec = importlib.util.find_spec("medsegbench")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = os.path.join(list(spec.submodule_search_locations)[0], "info.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["INFO"]:
            return ast.literal_eval(node.value)
    return {}


def dataset_names():
    """The name of every MedSegBench dataset (isic2016, kvasir, busi, wbc, abdomenus, ...), in INFO's order."""
    return tuple(medsegbench_info())


def spec_of(name):
    """The DataSpec of MedSegBench's dataset `name`: INFO's n_channels_im and pixel_labels (keys "0", "1", ...,
    or "0" and "non-zero": two classes, see foreground_is_non_zero)."""
    info = medsegbench_info()[name]
    labels = info["pixel_labels"]
    order = sorted(labels, key=lambda key: int(key) if key.isdigit() else len(labels))  # "non-zero" last
    return DataSpec(int(info["n_channels_im"]), tuple(labels[key] for key in order))


def foreground_is_non_zero(name):
    """Whether INFO names the foreground of `name` by the label "non-zero" (pandental, dynamicnuclear): every
    label above 0 is foreground (their masks may number each object)."""
    return "non-zero" in medsegbench_info()[name]["pixel_labels"]


def npz_source(name, size):
    """(url, md5) of MedSegBench's file NAME_{size}.npz, as INFO gives them (INFO's stray spaces removed)."""
    info = medsegbench_info()[name]
    return info[f"url_{size}"].strip(), info[f"MD5_{size}"].strip()
