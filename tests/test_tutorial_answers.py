"""The answers to the tutorials' exercises (tutorials/answers/NN_name.md) stay true: each tutorial is run in
the mode its answers name, each ```python snippet of its answers is run at its end, in its namespace, and must
print exactly the ```text block that follows it; every number the answer's prose puts in bold must be among
what the snippets printed."""
import contextlib
import io
import os
import pathlib
import re
import runpy
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
ANSWERS = TUTORIALS / "answers"
BLOCK = re.compile(r"```(python|text)\n(.*?)```", re.S)
BOLD_NUMBER = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-+]?\d+(?:\.\d+)?")  # 31,037,633; -0.47; 5


def snippets(answer):
    """[(code, expected output)] of an answer file: each ```python block and the ```text block after it."""
    blocks = BLOCK.findall(answer)
    pairs = []
    for (kind, code), (next_kind, text) in zip(blocks, blocks[1:] + [("", "")]):
        if kind == "python":
            assert next_kind == "text", f"a python snippet without its ```text output:\n{code}"
            pairs.append((code, text))
    return pairs


def bold_numbers(answer):
    """The numbers written in **bold** in an answer's prose (outside its code blocks)."""
    prose = BLOCK.sub("", answer)
    return [n for bold in re.findall(r"\*\*(.+?)\*\*", prose, re.S) for n in BOLD_NUMBER.findall(bold)]


def run_tutorial(stem, tmp_path, monkeypatch, *flags):
    """A tutorial's globals after running it as a script, in the mode `flags` set, figures to tmp_path."""
    monkeypatch.delenv("MINUNET_DATA_ROOT", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    script = TUTORIALS / f"{stem}.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--out", str(tmp_path), *flags])
    with contextlib.redirect_stdout(io.StringIO()):
        return runpy.run_path(str(script), run_name="__main__")


def check_answers(stem, namespace):
    answer = (ANSWERS / f"{stem}.md").read_text()
    pairs = snippets(answer)
    assert pairs, f"answers/{stem}.md has no snippet to check"
    printed = []
    for code, expected in pairs:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"answers/{stem}.md", "exec"), namespace)
        assert out.getvalue() == expected, f"answers/{stem}.md: the snippet\n{code}\nprinted\n{out.getvalue()}"
        printed.append(out.getvalue())
    numbers = bold_numbers(answer)
    missing = [n for n in numbers if n not in "".join(printed)]
    assert not missing, f"answers/{stem}.md states in bold {missing}, which no snippet printed"


# each answered tutorial, and the mode its answers are checked in (--quick where they do not depend on it)
CHECKED = [("01_data", ()), ("02_transforms", ()), ("03_unet_blocks", ("--quick",)), ("03b_unet", ("--quick",)),
           ("04_resnet34_encoder", ("--quick",)), ("05_losses_and_metrics", ("--quick",)),
           ("05b_dice_loss_tested", ("--quick",)),
           ("06_train_unet", ("--quick",)), ("06b_training_curves", ("--quick",)), ("07_train_resunet34", ("--quick",)),
           ("08_evaluate_and_predict", ("--quick",)), ("09_your_own_data", ("--quick",)),
           ("10_several_classes", ("--quick",)), ("11_export", ("--quick",))]


@pytest.mark.slow  # each runs a whole tutorial: seconds to a minute on two cores
@pytest.mark.parametrize("stem,flags", CHECKED)
def test_answers(stem, flags, tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    try:  # the snippets run as the tutorial left torch: 03b, 05 and 06 to 09 set one thread for tiny networks,
        check_answers(stem, run_tutorial(stem, tmp_path, monkeypatch, *flags))  # and a training's numbers
    finally:  # depend on the thread count
        torch.set_num_threads(threads)


# the tutorials whose exercises have answers
ANSWERED = ("01", "02", "03", "03b", "04", "05", "05b", "06", "06b", "07", "08", "09", "10", "11")


@pytest.mark.parametrize("number", ANSWERED)
def test_the_tutorial_ends_with_two_to_four_exercises_and_names_their_answers(number):
    script = next(p for p in TUTORIALS.glob(f"{number}_*.py"))
    text = script.read_text()
    exercises = text[text.index("# ## Exercises"):]
    assert 2 <= len(re.findall(r"^# \d\. \*\*", exercises, re.M)) <= 4, f"{script.name}: 2 to 4 exercises"
    assert f"`tutorials/answers/{script.stem}.md`" in text, f"{script.name} must name its answers file"
    assert (ANSWERS / f"{script.stem}.md").is_file() and script.stem in {stem for stem, _ in CHECKED}


def test_the_checker_catches_a_wrong_answer():
    answer = "```python\nprint(1 + 1)\n```\n\n```text\n2\n```\n\nIt is **3**, **1,024, -0.5**.\n"
    assert snippets(answer) == [("print(1 + 1)\n", "2\n")] and bold_numbers(answer) == ["3", "1,024", "-0.5"]
    with pytest.raises(AssertionError, match="a python snippet without"):
        snippets("```python\nprint(2)\n```\n")
