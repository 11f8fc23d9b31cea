"""The answers to the tutorials' exercises (tutorials/answers/NN_name.md) stay true: each tutorial is run in
the mode its answers name, each ```python snippet of its answers is run at its end, in its namespace, and must
print exactly the ```text block that follows it; every number the answer's prose puts in bold must be among
what the snippets printed.

A snippet whose output depends on the CPU (a training run: AVX-512 and AVX2 kernels round differently, and
the runs drift apart) is followed by one block per CPU kind instead, fenced ```text avx512 and ```text avx2
(torch.backends.cpu.get_cpu_capability(), in lower case): the one of this CPU must match exactly, and one must
be recorded for it. The kind is a proxy: oneDNN and MKL choose kernels by CPU model, so another CPU of a
recorded kind might still print other numbers (recorded so far: avx512 on Intel Xeons with and without AMX,
avx2 on an AMD EPYC). The text blocks after a snippet are those before the next ```python block."""
import contextlib
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
BLOCK = re.compile(r"```(python|text)(?: (\w+))?\n(.*?)```", re.S)  # kind, CPU (text only, optional), body
CPUS = ("avx512", "avx2")  # the kinds of CPU with outputs recorded
CPU = torch.backends.cpu.get_cpu_capability().lower()  # "avx512", "avx2", ...
BOLD_NUMBER = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-+]?\d+(?:\.\d+)?")  # 31,037,633; -0.47; 5


def snippets(answer, cpu=CPU):
    """[(code, expected output)] of an answer file: each ```python block and the ```text block after it (the
    one of CPU `cpu`, where the blocks after it are one per CPU)."""
    blocks = BLOCK.findall(answer)
    pairs = []
    for k, (kind, _, code) in enumerate(blocks):
        if kind != "python":
            continue
        outputs = []
        for next_kind, tag, text in blocks[k + 1:]:
            if next_kind != "text":
                break
            outputs.append((tag, text))
        assert outputs, f"a python snippet without its ```text output:\n{code}"
        tags = [tag for tag, _ in outputs]
        if tags == [""]:
            pairs.append((code, outputs[0][1]))
            continue
        assert len(set(tags)) == len(tags) and set(tags) <= set(CPUS), \
            f"either one ```text output or one per CPU ({', '.join(CPUS)}), each once, after:\n{code}"
        mine = [text for tag, text in outputs if tag == cpu]
        assert mine, f"no ```text {cpu} output recorded for this CPU after:\n{code}"
        pairs.append((code, mine[0]))
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
    blocks = BLOCK.findall(answer)
    fences = re.findall(r"^```(?:python|text).*$", answer, re.M)  # (```diff and others are only shown)
    assert len(fences) == len(blocks), f"answers/{stem}.md: a fence BLOCK does not read: {fences}"
    pairs = snippets(answer)
    assert pairs, f"answers/{stem}.md has no snippet to check"
    printed = []
    for code, expected in pairs:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"answers/{stem}.md", "exec"), namespace)
        assert out.getvalue() == expected, f"answers/{stem}.md: the snippet\n{code}\nprinted\n{out.getvalue()}"
        printed.append(out.getvalue())
    # printed here, or in the output recorded for another kind of CPU (checked on such a CPU)
    elsewhere = [text for kind, tag, text in blocks if kind == "text" and tag and tag != CPU]
    text = "\n".join(printed + elsewhere)
    missing = [n for n in bold_numbers(answer) if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", text)]
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
    per_cpu = "```python\nx()\n```\n\n```text avx512\n1\n```\n\n```text avx2\n2\n```\n"
    assert snippets(per_cpu, "avx512") == [("x()\n", "1\n")] and snippets(per_cpu, "avx2") == [("x()\n", "2\n")]
    with pytest.raises(AssertionError, match="no ```text default output recorded for this CPU"):
        snippets(per_cpu, "default")
    for wrong in ("```text\n1\n```\n\n```text avx2\n2\n```\n",  # one for all and one per CPU
                  "```text avx2\n1\n```\n\n```text avx2\n2\n```\n",  # a CPU twice
                  "```text avx215\n1\n```\n"):  # a CPU misspelt
        with pytest.raises(AssertionError, match="each once"):
            snippets("```python\nx()\n```\n\n" + wrong, "avx2")
