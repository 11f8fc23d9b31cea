"""The tutorials never rot: each runs with --quick, in order, prints no traceback or warning, and writes the
figures it announces; each is a percent-format script (one file for script and notebook) on the public API,
and opens and runs as a notebook. They run on this checkout's minunet (PYTHONPATH), not an installed copy."""
import ast
import concurrent.futures
import importlib.util
import os
import pathlib
import queue
import re
import select
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]*_*.py"))  # 01_data.py ... 03b_unet.py, ... 06b_training_curves.py, ...
ISIC_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "isic2016"
XRAYS_ROOT = ISIC_ROOT.parent / "jsrt"  # chest X-rays of four classes in the folder layout
ISIC2017_ROOT = ISIC_ROOT.parent / "isic2017"  # ISIC 2017's folders: 08's held-out collection, found beside 2016's


TIMEOUT = 240  # seconds one tutorial's quick run may take


def tutorial_env():
    """The environment the tutorials run in: no window for matplotlib, this checkout's minunet, no X-rays."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("MINUNET_XRAYS", None)  # 10 trains on the stand-in unless a test passes --xrays
    return env


def launch(script, out_dir, *flags):
    """Run a tutorial in a subprocess with its figures and runs going to out_dir; the CompletedProcess."""
    return subprocess.run([sys.executable, str(script), "--quick", "--out", str(out_dir), *flags],
                          cwd=out_dir, env=tutorial_env(), capture_output=True, text=True, timeout=TIMEOUT)


def checked(script, result, out_dir):
    """The output of a finished tutorial run, after checking it ended well and wrote the figures it announced."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script.name} exited {result.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, f"{script.name} printed a traceback:\n{output[-4000:]}"
    assert "Warning" not in output, f"{script.name} printed a warning:\n{output[-4000:]}"
    figures = [line[len("figure: "):] for line in output.splitlines() if line.startswith("figure: ")]
    assert figures, f"{script.name} announced no figure:\n{output[-2000:]}"
    for figure in figures:
        path = out_dir / figure
        assert path.is_file() and path.stat().st_size > 1000, f"{script.name}: {figure} was not written"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{script.name}: {figure} is not a PNG"
    return output


def run_tutorial(script, out_dir, *flags):
    """Run a tutorial and return its checked output."""
    return checked(script, launch(script, out_dir, *flags), out_dir)


def number(script):
    """A tutorial's number: "01" for 01_data.py, "03b" for 03b_unet.py."""
    return script.name.split("_")[0]


def best_dices(output, pattern=r"best validation Dice (\d\.\d+)"):
    """Every best validation Dice a tutorial printed, as floats."""
    return [float(x) for x in re.findall(pattern, output)]


def test_the_tutorials_are_numbered_in_order():
    # fifteen: a "b" continues the step before it (03b, the whole U-Net after its blocks; 05b, the Dice loss
    # tested after the losses by hand; 06b, reading training curves after the loop; 07b, the ResNet-34 U-Net
    # from a pretrained encoder)
    assert [number(p) for p in SCRIPTS] == ["01", "02", "03", "03b", "04", "05", "05b", "06", "06b", "07", "07b",
                                            "08", "09", "10", "11"], [p.name for p in SCRIPTS]


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    """One folder for all tutorials, as tutorials/out is: 07, 07b and 08 find the runs before them there."""
    return tmp_path_factory.mktemp("tutorials_out")


# the order the quick runs start in, longest first (bench/RESULTS.md, "The quick runs"), so that the two
# workers finish together: 06, 07, 07b and 08 as one job, in order (each uses the runs before it)
LONGEST_FIRST = [("06", "07", "07b", "08"), ("11",), ("03b",), ("05b",), ("10",), ("09",), ("04",), ("06b",), ("01",),
                 ("05",), ("03",), ("02",)]


class Worker:
    """A tests/tutorial_worker.py process: runs tutorials with --quick, one at a time, each in a fork of one
    process that has imported torch, matplotlib and minunet already (the 3-5 s every `python NN_*.py` spends
    on them). run() sends it one line (script, folder, log, seconds) and waits for the exit code it answers."""

    def __init__(self, out_dir, n):
        self.errors = out_dir / f"worker{n}.err"  # what the worker printed while importing: warnings too
        with open(self.errors, "w") as errors:
            self.process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "tutorial_worker.py")],
                                            env=tutorial_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=errors, text=True)

    def run(self, script, out_dir, seconds=TIMEOUT):
        """`script --quick --out out_dir`, run from out_dir, as a CompletedProcess; its stderr starts with the
        worker's own, so that a warning printed while importing is checked as the tutorial's."""
        log = out_dir / script.stem
        self.process.stdin.write(f"{script}\t{out_dir}\t{log}\t{seconds}\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], seconds + 60)  # the worker stops it before
        answer = self.process.stdout.readline() if ready else ""
        if not answer:
            self.process.kill()
            raise RuntimeError(f"the tutorial worker stopped answering (exit code {self.process.wait()}): "
                               f"{self.errors.read_text()[-2000:]}")
        out, err = (pathlib.Path(f"{log}.{name}").read_text() for name in ("out", "err"))
        return subprocess.CompletedProcess([script.name, "--quick"], int(answer), out, self.errors.read_text() + err)

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def quick_runs(out_dir):
    """Every tutorial run once with --quick, two at a time on the two cores. {script: CompletedProcess}."""
    jobs = [[s for n in job for s in SCRIPTS if number(s) == n] for job in LONGEST_FIRST]
    assert sorted(s for job in jobs for s in job) == SCRIPTS, "every tutorial in LONGEST_FIRST, once"
    workers, started = queue.Queue(), []  # each thread borrows whichever worker is free

    def run_job(job):  # a free worker runs the job's tutorials in order
        worker = workers.get()
        try:
            return [(s, worker.run(s, out_dir)) for s in job]
        finally:
            workers.put(worker)

    try:
        for n in range(2):
            started.append(Worker(out_dir, n))
            workers.put(started[-1])
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # each thread takes the next job when it is free
            return dict(pair for job in pool.map(run_job, jobs) for pair in job)
    finally:
        for worker in started:
            worker.close()


def test_the_worker_runs_a_script_as_python_would(tmp_path):
    scripts = {"fine": "import sys\nprint(sys.argv[1:], sys.stdin.read() == '')\nprint('note', file=sys.stderr)\n",
               "boom": "print('before')\nraise ValueError('boom')\n",
               "quits": "import sys\nsys.exit('cannot go on')\n",
               "hangs": "import time\ntime.sleep(60)\n"}
    for name, text in scripts.items():
        (tmp_path / f"{name}.py").write_text(text)
    worker = Worker(tmp_path, 0)
    try:
        fine, boom, quits = (worker.run(tmp_path / f"{name}.py", tmp_path) for name in ("fine", "boom", "quits"))
        hangs = worker.run(tmp_path / "hangs.py", tmp_path, seconds=2)
    finally:
        worker.close()
    assert (fine.returncode, fine.stdout, fine.stderr) == (0, f"['--quick', '--out', '{tmp_path}'] True\n", "note\n")
    assert boom.returncode == 1 and boom.stdout == "before\n" and "ValueError: boom" in boom.stderr
    assert quits.returncode == 1 and quits.stderr == "cannot go on\n"
    assert hangs.returncode == 1 and "Timeout" in hangs.stderr and "hangs.py" in hangs.stderr, hangs


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_tutorial_runs_quick(script, out_dir, quick_runs):
    output = checked(script, quick_runs[script], out_dir)
    if script.name.startswith("03_"):  # the transposed convolution's size formula, checked against torch
        assert "the formula equals nn.ConvTranspose2d's output size in all" in output, output[-2000:]
    if script.name.startswith("03b_"):  # the skips found by hooks; the paper's sizes; the ablation's verdict
        assert "skip connections found: down3 -> up1, down2 -> up2, down1 -> up3, inc -> up4" in output
        assert " 572  input" in output and " 388  two 3x3 convolutions" in output, output[-3000:]
        assert "in this run the skip connections were worth" in output, output[-2000:]
        dices = best_dices(output, r"skips +[\d,]+ parameters, .*: validation Dice (\d\.\d+)")
        assert len(dices) == 2 and min(dices) >= 0.75, output[-2000:]  # with and without skips, both learnt
    if script.name.startswith("04_"):  # the random encoder's maps told from the padding's frame
        assert "random weights         like a flat image's maps: stem " in output, output[-2000:]
    if script.name.startswith("05b_"):  # three losses trained, every one learnt, the verdict written from them
        dices = best_dices(output, r"seed \d, [A-Za-z +]+: Dice (\d\.\d+)")
        assert len(dices) == 3 and min(dices) >= 0.75, output[-2000:]
        assert "the argument's prediction" in output, output[-2000:]
    if script.name.startswith("06_"):  # the learner's loop checked, the library's walked through, a run that learns
        assert "my_train_one_epoch still has its `...` blanks" in output, output[-2000:]
        assert "def train_one_epoch(" in output and "scheduler.step()" in output, output[-2000:]
        assert "200 images in batches of 32: 6 steps an epoch, 8 images left out" in output, output[-2000:]
        dices = best_dices(output)
        assert len(dices) == 1 and dices[0] >= 0.75, output[-2000:]
    if script.name.startswith("06b_"):  # the gallery's three runs, read by sentences chosen from their numbers
        assert all(name in output for name in ("learning rate 10", "4 images, no augmentation",
                                               "64 images, augmented")), output[-2000:]
        assert "- learning rate 10: " in output and "- 4 images: " in output, output[-2000:]
        dices = best_dices(output, r"64 images, augmented .*val Dice best (\d\.\d+)")
        assert len(dices) == 1 and dices[0] >= 0.75, output[-2000:]
    if script.name.startswith("07_"):  # one seed per model quick, and the sentence that says what one seed allows
        assert "unet seed 0: reusing" in output and "over 1 seed(s)" in output, output[-2000:]
        assert "One seed per model: no spread" in output, output[-2000:]
        dices = best_dices(output)  # the run trained here: resunet34 seed 0
        assert len(dices) == 1 and min(dices) >= 0.75, output[-3000:]
    if script.name.startswith("07b_"):  # pretrained, fine-tuned, paired with 07's run of the same seed
        assert "size classifier: " in output and "resunet34 seed 0: reusing" in output, output[-2000:]
        assert "after the first epoch: one pair" in output and "at the best epoch: one pair" in output, output[-2000:]
        dices = best_dices(output)  # the run trained here: resunet34_sizes seed 0
        assert len(dices) == 1 and min(dices) >= 0.75, output[-3000:]
    if script.name.startswith("08_"):  # the end of the path: a checkpoint scored, reported, files segmented
        assert "jaccard" in output and "_Segmentation.png: 300x225 mode L" in output, output[-2000:]
        assert (out_dir / "08_report" / "report.html").is_file() and "Flagged images" in output, output[-2000:]
        dices = best_dices(output)  # the checkpoints it scores, 06's U-Net, 07's and 07b's: each one learnt
        assert len(dices) == 3 and min(dices) >= 0.75, output[-3000:]
    if script.name.startswith("09_"):  # a folder checked (the 0/1 note), trained on and segmented
        assert "hold 0 and 1, not 0 and 255" in output and "the masks are equal: True" in output, output[-2000:]
        assert len(list((out_dir / "09_predicted_masks").glob("*_Segmentation.png"))) == 3
        dices = best_dices(output)  # minunet train's own line
        assert len(dices) == 1 and dices[0] >= 0.75, output[-2000:]
    if script.name.startswith("10_"):  # several classes: the quick run learns, scored per class
        best = float(output.split("validation Dice, mean over the foreground classes: best ")[1].split(",")[0])
        assert best >= 0.75 and "ink " in output and "cross-entropy" in output, output[-2000:]
    if script.name.startswith("11_"):  # a model that learnt, folded, exported, run elsewhere and matched, with its card
        dices = best_dices(output)
        assert len(dices) == 1 and dices[0] >= 0.75, output[-2000:]
        assert "18 batch_norm operations gone" in output and "its input: batch x 3 x height x width" in output
        assert output.count("onnxruntime differs by at most") == 2 and "# Model card: minunet unet" in output
        assert (out_dir / "11_export" / "unet.onnx.md").is_file() and (out_dir / "11_export" / "unet.pt").is_file()
        assert "the same logits as the checkpoint's model: True" in output, output[-2000:]  # torch.hub


def test_04_draws_the_pretrained_features_only_when_the_file_is_at_hand(tmp_path, monkeypatch):
    # nothing is downloaded: without torchvision's ImageNet file in the torch hub cache one line says so and
    # that figure is skipped; with it there, its row is drawn under the random one. The file here is a
    # ResNet-34 state dict made locally (random weights, no network): only the mechanics are checked.
    import torch
    import torchvision

    script = next(p for p in SCRIPTS if p.name.startswith("04_"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    runs = {}
    for case in ("missing", "at hand"):
        if case == "at hand":
            torch.save(torchvision.models.resnet34(weights=None).state_dict(), hub / "resnet34-b627a593.pth")
        out_dir = tmp_path / case.replace(" ", "_")
        out_dir.mkdir()
        runs[case] = (out_dir, run_tutorial(script, out_dir))
    out_dir, output = runs["missing"]
    assert "torchvision's ImageNet file is not at hand (no resnet34-b627a593.pth in " in output, output[-2000:]
    assert "figure: 04_imagenet_features.png" not in output and not (out_dir / "04_imagenet_features.png").exists()
    out_dir, output = runs["at hand"]
    assert "not at hand" not in output and "resnet34-b627a593.pth  like a flat image's maps: stem " in output
    assert "figure: 04_imagenet_features.png" in output, output[-2000:]  # checked() found it written, a PNG


@pytest.mark.slow
@pytest.mark.skipif(not ISIC_ROOT.is_dir(), reason=f"no ISIC 2016 data at {ISIC_ROOT}")
@pytest.mark.parametrize("name", ["01_", "09_"])
def test_tutorial_runs_on_isic(name, tmp_path):
    # 01 reads the challenge folders (no test split there); 09 copies ISIC files into a folder of images/ and
    # masks/; 08 has its own test below
    script = next(p for p in SCRIPTS if p.name.startswith(name))
    output = run_tutorial(script, tmp_path, "--data-root", str(ISIC_ROOT))
    assert "ISIC_00" in output, output[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(not (ISIC_ROOT.is_dir() and ISIC2017_ROOT.is_dir()),
                    reason=f"no ISIC 2016 data at {ISIC_ROOT} or no ISIC 2017 data beside it")
def test_evaluating_tutorial_holds_out_isic2017_or_says_it_cannot(tmp_path, monkeypatch):
    """08 on ISIC 2016 scores ISIC 2017's validation images, found beside the data root, as its held-out
    collection, less the 3 that ISIC 2016's training split holds too: other scores than validation's, a gap
    said to be one. A data root with no isic2017 folder
    beside it falls back to the validation split, said in one line to be no longer held out."""
    monkeypatch.delenv("MINUNET_HELD_OUT", raising=False)
    script = next(p for p in SCRIPTS if p.name.startswith("08_"))
    output = run_tutorial(script, tmp_path, "--data-root", str(ISIC_ROOT))  # trains 06's quick U-Net first
    assert "3 of ISIC 2017's 150 validation images are in ISIC 2016's training split too" in output  # by name
    assert "held out: 147 ISIC 2017 validation images" in output and "ISIC_00" in output, output[-3000:]
    val, held = re.search(r"06_unet_isic2016_quick/best.pt +(\d\.\d+) +(\d\.\d+)", output).groups()
    assert val != held, output[-3000:]  # two collections, two scores (and two threshold curves)
    assert "a gap: the ISIC 2017 validation images scored" in output, output[-3000:]  # 3 epochs: far apart
    alone = tmp_path / "data" / "isic2016"  # the same ISIC 2016 folders, with no isic2017 folder beside them
    alone.mkdir(parents=True)
    for folder in ISIC_ROOT.glob("ISBI2016_*"):
        (alone / folder.name).symlink_to(folder)
    output = run_tutorial(script, tmp_path, "--data-root", str(alone))  # 06's U-Net read back, not trained
    said = [line for line in output.splitlines() if "isic2017 folder" in line or "ISIC 2016 itself" in line]
    assert said == ["no isic2017 folder beside the data root, and no --held-out DIR: the held-out images come "
                    "from ISIC 2016 itself"], output[-3000:]
    assert "it is NOT held out" in output and "held out: 75 isic2016 val images" in output, output[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(not XRAYS_ROOT.is_dir(), reason=f"no chest X-rays at {XRAYS_ROOT}")
def test_several_classes_tutorial_learns_every_class_of_the_xrays(tmp_path):
    # 10 on the JSRT X-rays: the classes named by the classes.txt it writes, the upright recipe, and every
    # foreground class's Dice at least 0.6 after the quick run (the tutorial asserts it; the test reads it)
    script = next(p for p in SCRIPTS if p.name.startswith("10_"))
    output = run_tutorial(script, tmp_path, "--xrays", str(XRAYS_ROOT))
    assert "4 classes: background, lungs, heart, clavicles" in output and "which way up: upright" in output
    dices = {name: float(dice) for name, dice in re.findall(r"^  (lungs|heart|clavicles) +Dice (\d\.\d+)", output, re.M)}
    assert len(dices) == 3 and min(dices.values()) >= 0.6, output[-2000:]
    assert (tmp_path / "10_heart_lungs.png").is_file() and (tmp_path / "10_xrays" / "classes.txt").is_file()


def cells(script):
    """The percent-format cells of a script: [(kind, [lines])], kind "markdown" or "code"."""
    result = []
    for line in script.read_text().splitlines():
        if line.startswith("# %%"):
            result.append(("markdown" if "[markdown]" in line else "code", []))
        elif result:
            result[-1][1].append(line)
        else:
            raise AssertionError(f"{script.name}: line before the first cell: {line!r}")
    return result


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_tutorial_is_a_percent_script_on_the_public_api(script):
    parsed = cells(script)
    kind, first = parsed[0]
    assert kind == "markdown" and first[0].startswith("# # "), f"{script.name} must open with a markdown title"
    for kind, lines in parsed:
        if kind == "markdown":
            bad = [line for line in lines if line and not (line == "#" or line.startswith("# "))]
            assert not bad, f"{script.name}: markdown lines must start with '# ': {bad[:3]}"
    assert sum(kind == "markdown" for kind, _ in parsed) >= 5, f"{script.name}: too little prose"
    tree = ast.parse(script.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minunet"):
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{script.name} imports private {private} from {node.module}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n and n.split(".")[0] == "numpy" for n in names), f"{script.name} imports NumPy"
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            pytest.fail(f"{script.name} line {node.lineno} uses the private attribute {node.attr}")
    text = script.read_text()
    assert "--quick" in text and "--data-root" in text


def test_tutorials_open_as_notebooks():
    import jupytext  # the test extras install it: a missing one fails, it does not skip
    for script in SCRIPTS:
        notebook = jupytext.read(script)
        kinds = [cell.cell_type for cell in notebook.cells]
        assert kinds[0] == "markdown" and "code" in kinds, f"{script.name}: {kinds}"
        title = notebook.cells[0].source.splitlines()[0]
        assert title.startswith(f"# {number(script)} "), f"{script.name}: the notebook's title is {title!r}"


def run_as_notebook(script, folder, flags=()):
    """Execute a tutorial as a notebook in `folder` (a fresh kernel on this checkout's minunet), its flags set
    by editing the `args` line as tutorials/README.md says; return the code cells' outputs."""
    import jupytext
    import nbclient

    assert importlib.util.find_spec("ipykernel"), "nbclient starts an ipykernel: install the test extras"
    notebook = jupytext.read(script)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if flags:
        cell = next(c for c in notebook.cells if "parser.parse_known_args()" in c.source)
        cell.source = cell.source.replace("parser.parse_known_args()", f"parser.parse_known_args({list(flags)!r})")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute(env=env)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, f"{script.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    return outputs


@pytest.mark.slow
def test_a_tutorial_runs_as_a_notebook(tmp_path):
    # In Jupyter there is no __file__ and the kernel adds its own flags: the tutorial must cope with both,
    # write its figures to out/ beside the notebook and show them inline.
    outputs = run_as_notebook(TUTORIALS / "02_transforms.py", tmp_path)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "02_each_transform.png", "02_nearest_vs_bilinear.png", "02_train_augmentation.png"]


@pytest.mark.slow
def test_the_own_data_tutorial_runs_as_a_notebook_with_flags(tmp_path):
    # 09 calls the command line in the kernel (minunet.cli.main) and writes files beside the notebook; its
    # flags are given as the README says, by editing the args line
    outputs = run_as_notebook(TUTORIALS / "09_your_own_data.py", tmp_path, ["--quick"])
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    text = "".join(o.get("text", "") for o in outputs)
    assert "hold 0 and 1, not 0 and 255" in text and "wrote 3 segmentation(s)" in text, text[-2000:]
    assert {"09_mask_trap.png", "09_predictions.png", "09_threshold_curve.png"} <= {
        p.name for p in (tmp_path / "out").iterdir()}


NOTEBOOKS = TUTORIALS / "notebooks"
NOTEBOOKS_DUE = tuple(number(s) for s in SCRIPTS)  # every tutorial


def notebook_of(script):
    return NOTEBOOKS / f"{script.stem}.ipynb"


@pytest.mark.parametrize("script", [s for s in SCRIPTS if number(s) in NOTEBOOKS_DUE or notebook_of(s).is_file()],
                         ids=lambda s: s.stem)
def test_the_committed_notebook_is_its_script_executed(script):
    # made by `python tutorials/make_notebooks.py NN`: the script's cells unchanged (compared without their
    # outputs), every code cell run, no error, figures inline, small enough to read and commit; then its
    # answers' cells (make_notebooks.answer_cells), executed, each snippet printing what its answer records
    import jupytext
    import nbformat
    from test_tutorial_answers import matches, snippets

    make_notebooks = load_make_notebooks()
    path = notebook_of(script)
    remake = f"run `python tutorials/make_notebooks.py --data-root DIR {number(script)}`"
    assert path.is_file(), f"{script.name} has no executed notebook {path.relative_to(ROOT)}: {remake}"
    committed, converted = nbformat.read(path, as_version=4), jupytext.read(script)
    own = [c for c in committed.cells if not make_notebooks.is_answer(c)]
    answers = committed.cells[len(own):]
    assert own == committed.cells[:len(own)], f"{path.name}: an answer's cell among the tutorial's own: {remake}"
    code = [[c.source for c in cells if c.cell_type == "code"] for cells in (own, converted.cells)]
    assert code[0] == code[1], f"{path.name}: its code differs from {script.name}'s: {remake}"
    text = [[c.source for c in cells if c.cell_type == "markdown"] for cells in (own, converted.cells)]
    assert text[0] == text[1], f"{path.name}: its text differs from {script.name}'s: {remake}"
    expected = make_notebooks.answer_cells(script)
    assert [(c.cell_type, c.source) for c in answers] == [(c.cell_type, c.source) for c in expected], \
        f"{path.name}: its answers' cells are not those of answers/{script.stem}.md: {remake}"
    cells = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in cells), f"{path.name} was not executed: {remake}"
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{path.name} holds an error"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"
    assert path.stat().st_size < 1_500_000, f"{path.name}: {path.stat().st_size} bytes, over 1.5 MB"
    shown = [c for c in answers if c.cell_type == "code" and "quick-run" not in c.metadata.get("tags", [])]
    recorded = snippets((make_notebooks.ANSWERS / f"{script.stem}.md").read_text())
    assert len(shown) == len(recorded), f"{path.name}: {len(shown)} answers' code cells for {len(recorded)} snippets"
    for cell, (snippet, output, tolerance) in zip(shown, recorded):
        printed = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
        assert matches(printed, output, tolerance), (
            f"{path.name}: the answer\n{snippet}\nprinted\n{printed}\nwhere answers/{script.stem}.md records\n{output}")
    if number(script) == "11":  # the torch.hub section ran: it found the repository's hubconf.py
        printed = "".join(o.get("text", "") for c in own if c.cell_type == "code" for o in c.outputs)
        assert "the same logits as the checkpoint's model: True" in printed, f"{path.name}: torch.hub skipped"


@pytest.mark.slow
def test_the_export_tutorial_finds_hubconf_when_run_as_a_notebook(tmp_path):
    # make_notebooks executes each notebook in a temporary folder, where a tutorial has no __file__: 11 finds
    # the repository's hubconf.py beside the minunet it imports, and loads its model through torch.hub
    outputs = run_as_notebook(TUTORIALS / "11_export.py", tmp_path, ["--quick"])
    text = "".join(o.get("text", "") for o in outputs)
    assert "the same logits as the checkpoint's model: True" in text, text[-2000:]


def test_each_notebook_has_its_script_and_a_link_in_the_readme():
    readme = (TUTORIALS / "README.md").read_text()
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks, "no notebook in tutorials/notebooks"
    for path in notebooks:
        assert (TUTORIALS / f"{path.stem}.py").is_file(), f"{path.name} has no script {path.stem}.py"
        assert f"(notebooks/{path.name})" in readme, f"tutorials/README.md does not link {path.name}"


def test_each_notebook_gives_the_readme_its_picture():
    # tutorials/pictures/ holds, byte for byte, the figure PICTURE names out of each executed notebook, and
    # the repository's README shows every one of them
    import nbformat
    make_notebooks = load_make_notebooks()
    readme = (ROOT / "README.md").read_text()
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        name = make_notebooks.PICTURE[path.stem.split("_")[0]]
        shown = make_notebooks.figures_of(nbformat.read(path, as_version=4))
        assert (TUTORIALS / "pictures" / name).read_bytes() == shown[name], \
            f"tutorials/pictures/{name} is not {path.name}'s figure: run make_notebooks.py for it"
        assert f"(tutorials/pictures/{name})" in readme, f"README.md does not show tutorials/pictures/{name}"
    assert set(make_notebooks.PICTURE) == {number(s) for s in SCRIPTS}, "a tutorial without a README picture"


def load_make_notebooks():
    spec = importlib.util.spec_from_file_location("make_notebooks", TUTORIALS / "make_notebooks.py")
    make_notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_notebooks)
    return make_notebooks


def test_make_notebooks_finds_a_tutorial_by_its_number_or_name():
    make_notebooks = load_make_notebooks()
    assert make_notebooks.tutorials() == SCRIPTS
    assert make_notebooks.find("03").name == "03_unet_blocks.py" and make_notebooks.find("03b").name == "03b_unet.py"
    assert make_notebooks.find("tutorials/01_data.py").name == "01_data.py"
    with pytest.raises(SystemExit, match="no single tutorial is named '99'"):
        make_notebooks.find("99")


def test_make_notebooks_starts_from_runs_from_and_keeps_its_folder(tmp_path, monkeypatch):
    make_notebooks = load_make_notebooks()
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "07_run").write_text("an earlier run")
    seen = []

    def fake_make(script, data_root, timeout, folder):  # a tutorial that reads the earlier run, writes its own
        seen.append((pathlib.Path(folder) / "out" / "07_run").read_text())
        (pathlib.Path(folder) / "out" / "08_run").write_text("this command's run")
        return make_notebooks.NOTEBOOKS / "08_evaluate_and_predict.ipynb", 1.0, 10

    monkeypatch.setattr(make_notebooks, "make", fake_make)
    monkeypatch.setattr(make_notebooks, "write_picture", lambda path: None)
    make_notebooks.main(["--runs-from", str(tmp_path / "earlier"), "--keep", str(tmp_path / "kept"), "08"])
    assert seen == ["an earlier run"]
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["07_run", "08_run"]


def test_make_notebooks_text_only_keeps_the_outputs_of_unchanged_code(tmp_path, monkeypatch):
    import nbformat
    make_notebooks = load_make_notebooks()
    monkeypatch.setattr(make_notebooks, "NOTEBOOKS", tmp_path)
    script = TUTORIALS / "02_transforms.py"
    committed = notebook_of(script)
    (tmp_path / committed.name).write_bytes(committed.read_bytes())
    edited = tmp_path / "edited" / script.name  # the same tutorial with one sentence more in its text
    edited.parent.mkdir()
    edited.write_text(script.read_text().replace("# %% [markdown]\n", "# %% [markdown]\n# One more sentence.\n#\n", 1))
    make_notebooks.retext(edited)
    before, after = (nbformat.read(p, as_version=4) for p in (committed, tmp_path / committed.name))
    assert after.cells[0].source.startswith("One more sentence.") and not before.cells[0].source.startswith("One")
    code = [[(c.source, c.outputs) for c in nb.cells if c.cell_type == "code"] for nb in (before, after)]
    assert code[0] == code[1] and any(outputs for _, outputs in code[1])  # the outputs kept, cell by cell
    edited.write_text(script.read_text().replace("import torch\n", "import torch  # changed\n", 1))
    with pytest.raises(SystemExit, match="code or its answers' changed"):
        make_notebooks.retext(edited)


TINY = """\
# %% [markdown]
# # 01 · A tiny tutorial

# %%
import argparse
import os

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out")
args, _ = parser.parse_known_args()
SIZE = 8 if args.quick else 64
DATA = os.environ.get("MINUNET_DATA_ROOT", "synthetic")
if args.quick and os.environ.get("TINY_FAILS"):
    raise ValueError("the quick run failed")
print(f"size {SIZE}")

# %% [markdown]
# ## Exercises
#
# 1. **Full.** *Full mode.* Print SIZE.
# 2. **Quick.** *Quick mode.* Print SIZE.
"""
TINY_ANSWERS = """\
# Answers to tutorial 01's exercises

Both print SIZE.

## 1. Full

*Full mode:* the run above.

```python
print(SIZE, DATA)
```

```text
64 $MINUNET_DATA_ROOT
```

It is **64**.

## 2. Quick

*Quick mode:* a run of its own.

```python
print(SIZE, DATA, args.out, "MINUNET_DATA_ROOT" in os.environ)
```

*Printed by the quick run:*

```text
8 synthetic out/quick True
```

Then **8**.
"""


@pytest.mark.slow
def test_make_notebooks_runs_the_answers_each_in_its_mode(tmp_path, monkeypatch):
    # a tiny tutorial and its answers: their cells follow the tutorial's, tagged, the code hidden; the full-mode
    # answer runs on the run above (with the data folder), the quick-mode one on a --quick run of its own
    # (without it, which comes back after); each prints in place of its recorded output
    import nbclient
    import nbformat
    make_notebooks = load_make_notebooks()
    for folder in ("answers", "notebooks", "data", "run"):
        (tmp_path / folder).mkdir()
    script = tmp_path / "01_tiny.py"
    script.write_text(TINY)
    (tmp_path / "answers" / "01_tiny.md").write_text(TINY_ANSWERS)
    monkeypatch.setattr(make_notebooks, "ANSWERS", tmp_path / "answers")
    monkeypatch.setattr(make_notebooks, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(make_notebooks, "TUTORIALS_IN_KERNEL", f"pathlib.Path({str(tmp_path)!r})")
    path, _, _ = make_notebooks.make(script, str(tmp_path / "data"), 120, str(tmp_path / "run"))
    cells = nbformat.read(path, as_version=4).cells
    assert [make_notebooks.is_answer(c) for c in cells] == [False] * 3 + [True] * 8
    assert [(c.cell_type, c.source.splitlines()[0]) for c in cells[3:]] == [
        ("markdown", "## Answers to the exercises"), ("markdown", "### 1. Full"), ("code", "print(SIZE, DATA)"),
        ("markdown", "It is **64**."), ("markdown", "### 2. Quick"),
        ("code", "# The answers below run after the tutorial's quick run (--quick, synthetic lesions), as the answers file"),
        ("code", 'print(SIZE, DATA, args.out, "MINUNET_DATA_ROOT" in os.environ)'),
        ("markdown", "*Printed by the quick run:*")]
    assert all(c.metadata.jupyter.source_hidden for c in cells[3:] if c.cell_type == "code")
    printed = [[o.get("text") for o in c.outputs] for c in cells if c.cell_type == "code"]
    assert printed == [["size 64\n"], ["64 $MINUNET_DATA_ROOT\n"], [], ["8 synthetic out/quick True\n"]]
    # the answers' text changed, not their code: --text-only keeps the outputs; their code changed: it refuses
    (tmp_path / "answers" / "01_tiny.md").write_text(TINY_ANSWERS.replace("It is **64**.", "It is 64 here."))
    make_notebooks.retext(script)
    again = nbformat.read(path, as_version=4).cells
    assert again[6].source == "It is 64 here." and [c.outputs for c in again if c.cell_type == "code"] == [
        c.outputs for c in cells if c.cell_type == "code"]
    (tmp_path / "answers" / "01_tiny.md").write_text(TINY_ANSWERS.replace("print(SIZE, DATA)", "print(DATA)"))
    with pytest.raises(SystemExit, match="code or its answers' changed"):
        make_notebooks.retext(script)
    # a full-mode answer after a quick one would run on the quick run's names: refused
    first, second = TINY_ANSWERS.split("## 2. Quick")
    swapped = first.split("## 1. Full")[0] + "## 2. Quick" + second + "\n## 1. Full" + first.split("## 1. Full")[1]
    (tmp_path / "answers" / "01_tiny.md").write_text(swapped)
    with pytest.raises(SystemExit, match="runs in full mode after an answer in quick mode"):
        make_notebooks.answer_cells(script)
    # a quick run that fails fails the notebook, though its output is hidden
    (tmp_path / "answers" / "01_tiny.md").write_text(TINY_ANSWERS)
    monkeypatch.setenv("TINY_FAILS", "1")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="the quick run failed"):
        make_notebooks.make(script, None, 120, str(tmp_path / "run"))
