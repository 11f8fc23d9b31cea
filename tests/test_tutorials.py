"""The tutorials never rot: each runs with --quick, in order, prints no traceback or warning, and writes the
figures it announces; each is a percent-format script (one file for script and notebook) on the public API."""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

TUTORIALS = pathlib.Path(__file__).resolve().parent.parent / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
ISIC_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "isic2016"


def run_tutorial(script, out_dir, *flags):
    """Run a tutorial in a subprocess with its figures and runs going to out_dir; return its output."""
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out_dir), *flags],
                            cwd=out_dir, env=env, capture_output=True, text=True, timeout=240)
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


def test_there_are_eight_tutorials_in_order():
    assert [p.name[:3] for p in SCRIPTS] == [f"{i:02d}_" for i in range(1, 9)], [p.name for p in SCRIPTS]


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    """One folder for all tutorials, as tutorials/out is: 07 and 08 find the runs of 06 and 07 there."""
    return tmp_path_factory.mktemp("tutorials_out")


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_tutorial_runs_quick(script, out_dir):
    output = run_tutorial(script, out_dir)
    if script.name.startswith("08_"):  # the end of the path: a checkpoint scored, files segmented
        assert "jaccard" in output and "_Segmentation.png: 300x225 mode L" in output, output[-2000:]


@pytest.mark.skipif(not ISIC_ROOT.is_dir(), reason=f"no ISIC 2016 data at {ISIC_ROOT}")
@pytest.mark.parametrize("name", ["01_", "08_"])
def test_tutorial_runs_on_isic(name, tmp_path):
    # 01 reads the challenge folders (no test split there); 08 falls back to scoring the validation split
    script = next(p for p in SCRIPTS if p.name.startswith(name))
    output = run_tutorial(script, tmp_path, "--data-root", str(ISIC_ROOT))
    assert "ISIC_00" in output, output[-2000:]


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
    jupytext = pytest.importorskip("jupytext")
    for script in SCRIPTS:
        notebook = jupytext.read(script)
        kinds = [cell.cell_type for cell in notebook.cells]
        assert kinds[0] == "markdown" and "code" in kinds, f"{script.name}: {kinds}"
        title = notebook.cells[0].source.splitlines()[0]
        assert title.startswith(f"# {script.name[:2]} "), f"{script.name}: the notebook's title is {title!r}"


def test_a_tutorial_runs_as_a_notebook(tmp_path):
    # In Jupyter there is no __file__ and the kernel adds its own flags: the tutorial must cope with both,
    # write its figures to out/ beside the notebook and show them inline.
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = jupytext.read(TUTORIALS / "02_transforms.py")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "02_each_transform.png", "02_nearest_vs_bilinear.png", "02_train_augmentation.png"]
