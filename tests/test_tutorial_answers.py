"""The answers to the tutorials' exercises (tutorials/answers/NN_name.md) stay true: each answer names the mode
it runs in (*Quick mode:* the tutorial's --quick run on synthetic lesions; *Full mode:* its run without --quick,
as its notebook's: on the ISIC 2016 images at hand where it reads them), as its exercise does; each tutorial is
run in each mode its answers name, each ```python snippet of an answer in that mode is run at its end, in its
namespace, and must print the ```text block that follows it (one block; the text blocks after a snippet are
those before the next ```python block); every number the answer's prose puts in bold must be in the recorded
outputs.

A block matches exactly, unless its fence states a tolerance, as in ```text ±0.02: then the printed output,
split into numbers and the text between them, must have the same text, and each number must be within the
tolerance (absolute, its edge included) of the recorded one. A training run's numbers need one: kernels round
differently from one CPU to another (AVX-512 or AVX2, Intel or AMD; bf16 autocast where the CPU has it), and
a run drifts apart from there. Each answer says what a tolerance is for and sets it at least twice the largest
difference seen between CPUs; where a run's outcome is chaotic (an early stop's epoch, a loss exploding at a
rate too high), the snippet prints the claim its prose makes, not the digits. No output is recorded per CPU."""
import contextlib
import decimal
import importlib.util
import io
import pathlib
import re
import runpy
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
ANSWERS = TUTORIALS / "answers"
ISIC_ROOT = ROOT.parent / "shared" / "data" / "isic2016"
BLOCK = re.compile(r"```(python|text)(?: ([^\n]*))?\n(.*?)```", re.S)  # kind, tag (text only, optional), body
TOLERANCE = re.compile(r"±(\d+(?:\.\d+)?)")  # a ```text block's tag: the tolerance of its numbers
NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")  # 4096; +0.15; -3; 6.59e+05; 1e-5
BOLD_NUMBER = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-+]?\d+(?:\.\d+)?")  # 31,037,633; -0.47; 5


def snippets(answer):
    """[(code, expected output, tolerance)] of an answer file: each ```python block, the ```text block after
    it, and that block's tolerance (a Decimal; None: exactly)."""
    blocks = BLOCK.findall(answer)
    triples = []
    for k, (kind, _, code) in enumerate(blocks):
        if kind != "python":
            continue
        outputs = []
        for next_kind, tag, text in blocks[k + 1:]:
            if next_kind != "text":
                break
            outputs.append((tag, text))
        assert outputs, f"a python snippet without its ```text output:\n{code}"
        assert len(outputs) == 1, f"one ```text output after each snippet, not {len(outputs)} (none per CPU):\n{code}"
        tag, text = outputs[0]
        tolerance = TOLERANCE.fullmatch(tag)
        assert not tag or tolerance, f"a ```text block's tag is a tolerance (```text ±0.02) or nothing, not {tag!r}"
        triples.append((code, text, decimal.Decimal(tolerance[1]) if tag else None))
    return triples


def matches(printed, recorded, tolerance=None):
    """Whether a snippet's printed output matches its recorded one: exactly, or, with a tolerance, with the
    same text between the numbers and each number within the tolerance of the recorded one."""
    if tolerance is None:
        return printed == recorded
    numbers = NUMBER.findall(printed), NUMBER.findall(recorded)
    return NUMBER.split(printed) == NUMBER.split(recorded) and all(
        abs(decimal.Decimal(a) - decimal.Decimal(b)) <= tolerance for a, b in zip(*numbers))


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


def load_make_notebooks():
    """tutorials/make_notebooks.py, which reads an answers file's sections and their modes for the notebooks."""
    spec = importlib.util.spec_from_file_location("make_notebooks", TUTORIALS / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sections(stem):
    """[(heading, mode, text)] of a tutorial's answers file: one per exercise, its mode "quick" or "full"."""
    return load_make_notebooks().answer_sections(TUTORIALS / f"{stem}.py")[1]


def check_answers(stem, namespace, mode=None):
    """Run the snippets of a tutorial's answers in `mode` (all of them: None) in `namespace`, each checked
    against its recorded output, and check the bold numbers of the whole file against the recorded outputs."""
    answer = (ANSWERS / f"{stem}.md").read_text()
    blocks = BLOCK.findall(answer)
    fences = re.findall(r"^```(?:python|text).*$", answer, re.M)  # (```diff and others are only shown)
    assert len(fences) == len(blocks), f"answers/{stem}.md: a fence BLOCK does not read: {fences}"
    triples = snippets(answer)
    assert triples, f"answers/{stem}.md has no snippet to check"
    run = triples if mode is None else [t for _, m, text in sections(stem) if m == mode for t in snippets(text)]
    assert run, f"answers/{stem}.md has no snippet in {mode} mode"
    for code, recorded, tolerance in run:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"answers/{stem}.md", "exec"), namespace)
        assert matches(out.getvalue(), recorded, tolerance), (
            f"answers/{stem}.md: the snippet\n{code}\nprinted\n{out.getvalue()}\nwhere it records"
            + (f" (numbers within ±{tolerance})" if tolerance is not None else "") + f"\n{recorded}")
    # in the recorded outputs, which the snippets printed (up to each block's tolerance)
    text = "\n".join(recorded for _, recorded, _ in triples)
    missing = [n for n in bold_numbers(answer) if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", text)]
    assert not missing, f"answers/{stem}.md states in bold {missing}, which no recorded output holds"


# each answered tutorial
STEMS = sorted(p.stem for p in ANSWERS.glob("*.md"))


def flags(stem, mode):
    """The tutorial's flags in a mode: --quick (synthetic lesions), or none, as its notebook runs it: with the
    ISIC 2016 images at hand where it reads them (the notebooks are made with --data-root for those)."""
    if mode == "quick":
        return ("--quick",)
    return ("--data-root", str(ISIC_ROOT)) if "MINUNET_DATA_ROOT" in (TUTORIALS / f"{stem}.py").read_text() else ()


# each tutorial in each mode that one of its answers' snippets runs in
CHECKED = [(stem, mode) for stem in STEMS for mode in ("full", "quick")
           if any(m == mode and "```python" in text for _, m, text in sections(stem))]


@pytest.mark.slow  # each runs a whole tutorial: seconds to a minute on two cores
@pytest.mark.parametrize("stem,mode", CHECKED, ids=[f"{stem}-{mode}" for stem, mode in CHECKED])
def test_answers(stem, mode, tmp_path, monkeypatch):
    if "--data-root" in flags(stem, mode) and not ISIC_ROOT.is_dir():
        pytest.skip(f"answers/{stem}.md runs in full mode on ISIC 2016, not at {ISIC_ROOT}")
    threads = torch.get_num_threads()
    try:  # the snippets run as the tutorial left torch: 03b, 05 and 06 to 09 set one thread for tiny networks,
        check_answers(stem, run_tutorial(stem, tmp_path, monkeypatch, *flags(stem, mode)), mode)  # and a
    finally:  # training's numbers depend on the thread count
        torch.set_num_threads(threads)


# the tutorials whose exercises have answers
ANSWERED = ("01", "02", "03", "03b", "04", "05", "05b", "06", "06b", "07", "07b", "08", "09", "10", "11")


@pytest.mark.parametrize("number", ANSWERED)
def test_the_tutorial_ends_with_two_to_four_exercises_and_names_their_answers(number):
    script = next(p for p in TUTORIALS.glob(f"{number}_*.py"))
    text = script.read_text()
    exercises = text[text.index("# ## Exercises"):]
    assert 2 <= len(re.findall(r"^# \d\. \*\*", exercises, re.M)) <= 4, f"{script.name}: 2 to 4 exercises"
    assert f"`tutorials/answers/{script.stem}.md`" in text, f"{script.name} must name its answers file"
    assert (ANSWERS / f"{script.stem}.md").is_file() and script.stem in STEMS


@pytest.mark.parametrize("number", ANSWERED)
def test_each_exercise_and_its_answer_name_one_mode(number):
    # "1. **Title.** *Quick mode.*" in the tutorial, "## 1. Title" then "*Quick mode:*" in its answers: the
    # same mode, exercise by exercise, so that a learner's numbers can be checked against the answer's
    script = next(p for p in TUTORIALS.glob(f"{number}_*.py"))
    exercises = script.read_text().split("# ## Exercises")[1]
    items = re.findall(r"^# (\d)\. \*\*.+?\*\* ?(?:\*(Quick|Full) mode\.\*)?", exercises, re.M)
    assert all(mode for _, mode in items), f"{script.name}: an exercise that names no mode: {items}"
    answered = [(heading.split(".")[0].removeprefix("## "), mode) for heading, mode, _ in sections(script.stem)]
    assert answered == [(n, mode.lower()) for n, mode in items], (
        f"answers/{script.stem}.md and {script.name} differ in their exercises or modes: {answered} against {items}")


def test_the_checker_catches_a_wrong_answer(tmp_path, monkeypatch):
    answer = "```python\nprint(1 + 1)\n```\n\n```text\n2\n```\n\nIt is **3**, **1,024, -0.5**.\n"
    assert snippets(answer) == [("print(1 + 1)\n", "2\n", None)] and bold_numbers(answer) == ["3", "1,024", "-0.5"]
    with pytest.raises(AssertionError, match="a python snippet without"):
        snippets("```python\nprint(2)\n```\n")
    # a tolerance: the same words, each number within it of the recorded one (integers and signs included)
    recorded, within = "best Dice 0.79 at epoch 8; gap +0.05, loss 6.59e+05\n", decimal.Decimal("0.02")
    assert matches("best Dice 0.81 at epoch 8; gap +0.03, loss 6.59e+05\n", recorded, within)  # the edge is in
    for wrong in ("best Dice 0.82 at epoch 8; gap +0.05, loss 6.59e+05\n",  # a number outside
                  "best Dice 0.79 at epoch 7; gap +0.05, loss 6.59e+05\n",  # an integer: a number too
                  "best Dice 0.79 at epoch 8; gap -0.05, loss 6.59e+05\n",  # the sign is the number's
                  "best Dice 0.79 at epoch 8; gap +0.05, loss 6.60e+05\n",  # 6.59e+05 is 659000
                  "best loss 0.79 at epoch 8; gap +0.05, loss 6.59e+05\n",  # a word changed
                  "best Dice 0.79 at epoch 8; gap +0.05, loss 6.59e+05 1\n",  # a number more
                  "best Dice 0.79 at epoch 8;  gap +0.05, loss 6.59e+05\n"):  # a space more
        assert not matches(wrong, recorded, within), wrong
    assert not matches("0.790\n", "0.79\n") and matches("0.790\n", "0.79\n", decimal.Decimal(0))  # untagged: exactly
    assert snippets("```python\nx()\n```\n\n```text ±0.02\n1\n```\n") == [("x()\n", "1\n", within)]
    for tag in ("avx512", "avx2", "±", "± 0.02", "±0.02 avx2", "+-0.02", "±.02", "±2%", "tolerance 0.02"):
        with pytest.raises(AssertionError, match="a tolerance .* or nothing"):  # a CPU's outputs are no more
            snippets(f"```python\nx()\n```\n\n```text {tag}\n1\n```\n")
    with pytest.raises(AssertionError, match="one ```text output after each snippet"):
        snippets("```python\nx()\n```\n\n```text\n1\n```\n\n```text ±1\n2\n```\n")
    # the whole check, on the answers of a made-up tutorial "xx" whose namespace holds a run's Dice
    monkeypatch.setitem(globals(), "ANSWERS", tmp_path)
    snippet = "```python\nprint(f\"Dice {dice:.2f}\")\n```\n\n```text ±0.02\nDice 0.79\n```\n\n"
    (tmp_path / "xx.md").write_text(snippet + "It ends at **0.79**.\n")
    for dice in (0.77, 0.79, 0.8149):
        check_answers("xx", {"dice": dice})
    outside = r"(?s)printed.*Dice 0\.82.*where it records \(numbers within ±0\.02\).*Dice 0\.79"
    with pytest.raises(AssertionError, match=outside):
        check_answers("xx", {"dice": 0.8151})
    (tmp_path / "xx.md").write_text(snippet + "It ends at **0.81**, within the tolerance.\n")  # not recorded
    with pytest.raises(AssertionError, match=r"states in bold \['0.81'\], which no recorded output holds"):
        check_answers("xx", {"dice": 0.81})
    (tmp_path / "xx.md").write_text(snippet.replace("text ±0.02", "text±0.02"))  # a fence that does not read
    with pytest.raises(AssertionError, match="a fence BLOCK does not read"):
        check_answers("xx", {"dice": 0.79})
