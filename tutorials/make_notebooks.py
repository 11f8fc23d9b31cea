"""Make the executed notebooks in tutorials/notebooks/ from the tutorial scripts: one command for all of them.

    python tutorials/make_notebooks.py --data-root ../shared/data/isic2016 01 02 03 03b 04 05 05b 06 07 07b 08 09
    python tutorials/make_notebooks.py --xrays ../shared/data/jsrt 10           # chest X-rays
    python tutorials/make_notebooks.py 06b 11                                   # synthetic data only
    python tutorials/make_notebooks.py                                          # every notebook, on synthetic data

Each script is converted by jupytext (its `# %%` cells become the notebook's cells, unchanged), executed by
nbclient in a fresh kernel in its full mode (not --quick) on this checkout's minunet, and written to
tutorials/notebooks/NAME.ipynb with its outputs: the printed text and the figures, as the PNG files the
tutorial wrote. One of those figures (PICTURE) is also copied to tutorials/pictures/, where the repository's
README shows it. The tutorials of one command run in the order named, in one temporary folder (their figures
and runs go to out/ there): name 06 07 07b 08 in one command, and 07 finds 06's run, 07b 07's, 08 the checkpoints of all three.
--runs-from DIR starts that folder from a copy of an earlier out/ folder, whose runs the tutorials read back
(they say "reusing") instead of training them again; --keep DIR copies the out/ folder there at the end, for a
later --runs-from. A notebook cannot take command-line flags, so the data folder goes in through the
environment: --data-root DIR sets MINUNET_DATA_ROOT, which the tutorials take as the default of their own
--data-root, and --xrays DIR sets MINUNET_XRAYS, 10's chest X-rays (where an output names such a folder, it
reads $MINUNET_DATA_ROOT or $MINUNET_XRAYS, not this machine's path). tests/test_tutorials.py fails when a notebook's cells differ from its script's: after
editing a tutorial or its answers, run this command for it (with --text-only where only their text changed: the
outputs are kept).

After the tutorial's own cells each notebook holds the answers to its exercises (tutorials/answers/NAME.md),
executed: their text, and each ```python snippet as a code cell whose source is hidden in Jupyter (the
cells are tagged "answer"), its output in place of the ```text block the answers file records. Each answer
names its mode: *Full mode:* snippets run after the tutorial's run above; *Quick mode:* snippets after the
tutorial's `--quick` run on synthetic lesions, which a hidden cell runs first (its output hidden too).
"""
import argparse
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOKS = HERE / "notebooks"
PICTURES = HERE / "pictures"
ANSWERS = HERE / "answers"
# each tutorial's picture on the README's page: one figure its notebook shows, copied out of the notebook
PICTURE = {"01": "01_grid.png", "02": "02_train_augmentation.png", "03": "03_transposed_convolution.png",
           "03b": "03b_unet_diagram.png", "04": "04_resunet34_diagram.png", "05": "05_per_image_dice.png",
           "05b": "05b_loss_by_lesion_size.png",
           "06": "06_unet_predictions.png", "06b": "06b_curve_gallery.png", "07": "07_compare_dice.png",
           "07b": "07b_pretrained_dice.png",
           "08": "08_threshold_curves.png", "09": "09_predictions.png", "10": "10_confusion.png",
           "11": "11_export_compare.png"}
MAX_BYTES = 1_500_000  # a notebook above this is too big to read on GitHub or to commit lightly
HEADING = re.compile(r"^(## \d+\. .*)$", re.M)  # an answer's heading in an answers file: "## 2. Which border?"
MODE = re.compile(r"\*(Quick|Full) mode:\*")  # the words an answer opens with: the mode its snippets run in
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*(?:\n|\Z)", re.M | re.S)  # kind ("python", "text", "diff"), body
# where the kernel finds the tutorials: beside the minunet it imports (this checkout, through PYTHONPATH)
TUTORIALS_IN_KERNEL = 'pathlib.Path(minunet.__file__).resolve().parents[1] / "tutorials"'
DATA_VARIABLES = ("MINUNET_DATA_ROOT", "MINUNET_XRAYS")  # the data folders a notebook's kernel is given
QUICK_RUN = """\
# The answers below run after the tutorial's quick run (--quick, synthetic lesions), as the answers file
# says: the tutorial runs again here that way, its output hidden, and its names replace the full run's.
import os
import pathlib
import runpy
import sys

from IPython.utils.capture import capture_output

import minunet

tutorial = {tutorials} / "{name}"
argv = sys.argv
folders = {{v: os.environ.pop(v) for v in {variables} if v in os.environ}}  # quick mode reads no data folder
try:
    sys.argv = [str(tutorial), "--quick", "--out", os.path.join("out", "quick")]
    with capture_output():  # its printing and figures
        quick = runpy.run_path(str(tutorial), run_name="__main__")
finally:
    sys.argv = argv
    os.environ.update(folders)
globals().update({{name: value for name, value in quick.items() if not name.startswith("__")}})"""


def tutorials():
    """Every tutorial script, in order: 01_data.py, 02_transforms.py, 03_..., 03b_..., ..."""
    return sorted(p for p in HERE.glob("[0-9][0-9]*_*.py"))


def find(name):
    """The tutorial named by `name`: its number ("03b"), its stem ("03b_unet") or its file name."""
    stem = pathlib.Path(name).name.removesuffix(".py")
    matches = [p for p in tutorials() if p.stem == stem or p.stem.split("_")[0] == stem]
    if len(matches) != 1:
        sys.exit(f"make_notebooks: no single tutorial is named {name!r}: "
                 f"{', '.join(p.stem for p in tutorials())}")
    return matches[0]


def converted(script):
    """A tutorial script as a notebook (jupytext), its cells with fixed ids: a rerun changes only outputs."""
    import jupytext

    notebook = jupytext.read(script)
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"{script.stem.split('_')[0]}-{number:02d}"
    return notebook


def answer_sections(script):
    """A tutorial's answers file (answers/NAME.md) in parts: its opening text, and for each exercise
    (heading, mode, text): its heading ("## 2. Which border?"), the mode its snippets run in ("quick" or
    "full", from the `*Quick mode:*` or `*Full mode:*` its text opens with) and its text."""
    path = ANSWERS / f"{script.stem}.md"
    parts = HEADING.split(path.read_text())
    sections = []
    for heading, text in zip(parts[1::2], parts[2::2]):
        mode = MODE.match(text.strip())
        if not mode:
            sys.exit(f"make_notebooks: {path.name}: {heading!r} does not open with *Quick mode:* or *Full mode:*")
        sections.append((heading, mode[1].lower(), text.strip()))
    return parts[0], sections


def answer_cells(script):
    """The cells of a tutorial's answers, which follow its own cells in the notebook, each tagged "answer": a
    markdown cell per stretch of text, a code cell (its source hidden in Jupyter) per ```python snippet; the
    ```text blocks are left out, as the executed cells print them. Before the first snippet of a quick-mode
    answer, a cell (tagged "quick-run" too) runs the tutorial again with --quick; a full-mode answer with code
    cannot come after it."""
    import nbformat.v4

    number = script.stem.split("_")[0]
    opening, sections = answer_sections(script)
    opening = opening.strip().partition("\n")[2]  # without its title
    cells = [nbformat.v4.new_markdown_cell(f"## Answers to the exercises\n\n{opening.strip()}")]
    quick = False
    for heading, mode, text in sections:
        pieces, start = [], 0  # ("markdown" or "code", source), in the file's order
        for fence in FENCE.finditer(text):
            if fence[1] in ("python", "text"):  # other blocks (```diff) stay in the text
                pieces.append(("markdown", text[start:fence.start()]))
                pieces += [("code", fence[2].rstrip("\n"))] if fence[1] == "python" else []
                start = fence.end()
        pieces.append(("markdown", text[start:]))
        section = [nbformat.v4.new_markdown_cell(f"#{heading}")]  # one level down, under the cell above
        for kind, source in pieces:
            if kind == "markdown" and section[-1].cell_type == "markdown":
                section[-1].source = (section[-1].source + "\n\n" + source.strip()).strip()
                continue
            if kind == "code" and mode == "quick" and not quick:
                quick = True
                section.append(nbformat.v4.new_code_cell(QUICK_RUN.format(tutorials=TUTORIALS_IN_KERNEL,
                                                                          name=script.name,
                                                                          variables=DATA_VARIABLES),
                                                         metadata={"tags": ["quick-run"]}))
            if kind == "code" and mode == "full" and quick:
                sys.exit(f"make_notebooks: answers/{script.stem}.md: {heading!r} runs in full mode after an answer in "
                         f"quick mode, whose run replaced the full one: put the full-mode answers first")
            section.append(nbformat.v4.new_code_cell(source) if kind == "code"
                           else nbformat.v4.new_markdown_cell(source.strip()))
        cells += [cell for cell in section if cell.source]
    for k, cell in enumerate(cells):
        cell["id"] = f"{number}-a{k:02d}"
        cell.metadata.setdefault("tags", []).insert(0, "answer")
        if cell.cell_type == "code":
            cell.metadata["jupyter"] = {"source_hidden": True}
    return cells


def with_answers(script):
    """A tutorial as a notebook: its own cells (jupytext), then its answers' (answer_cells)."""
    notebook = converted(script)
    notebook.cells += answer_cells(script)
    return notebook


def is_answer(cell):
    """Whether a notebook's cell is one of its answers' (answer_cells), not the tutorial's own."""
    return "answer" in cell.metadata.get("tags", [])


def make(script, data, timeout, folder):
    """Convert, execute (in `folder`) and write one tutorial's notebook, its answers after its own cells;
    return (path, seconds, bytes). data: {variable of DATA_VARIABLES: its folder} for the kernel (a path, a
    folder given to every variable for a tutorial that reads one, or None: synthetic data)."""
    import nbclient
    import nbformat

    notebook = with_answers(script)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if not isinstance(data, dict):  # one folder (or None): the ISIC folder, as the tutorials read it
        data = {"MINUNET_DATA_ROOT": data}
    data = {v: str(pathlib.Path(d).resolve()) for v, d in data.items() if d}
    for variable in DATA_VARIABLES:
        env.pop(variable, None)
    env.update(data)
    start = time.perf_counter()
    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": folder}})
    client.execute(env=env)  # raises CellExecutionError, with the traceback, when a cell fails
    seconds = time.perf_counter() - start
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # timestamps: they would change every line of a rerun's diff
        merged = []  # consecutive prints in one output, however the kernel happened to flush them
        for output in cell.get("outputs", []):
            for variable, path in data.items():  # this machine's path of a data folder: not the reader's
                if "text" in output:
                    output["text"] = output["text"].replace(path, "$" + variable)
            if "text" in output:  # the temporary folder the notebook ran in: paths as the reader's, relative
                output["text"] = output["text"].replace(str(folder) + os.sep, "")
            if merged and output.output_type == merged[-1].output_type == "stream" and output.name == merged[-1].name:
                merged[-1]["text"] += output["text"]
            else:
                merged.append(output)
        if cell.cell_type == "code":
            cell.outputs = merged
    notebook.metadata["minunet"] = {"made_by": "python tutorials/make_notebooks.py",
                                    "data": " ".join(data) or "synthetic lesions",
                                    "seconds": round(seconds)}
    text = nbformat.writes(notebook)
    if len(text.encode()) > MAX_BYTES:
        sys.exit(f"make_notebooks: {script.stem}'s notebook would be {len(text.encode()) / 1e6:.1f} MB, over "
                 f"{MAX_BYTES / 1e6:.1f} MB: draw smaller figures (dpi, size) in the tutorial")
    NOTEBOOKS.mkdir(exist_ok=True)
    path = NOTEBOOKS / f"{script.stem}.ipynb"
    path.write_text(text)
    return path, seconds, len(text.encode())


def retext(script):
    """Give a tutorial's committed notebook its script's and its answers' text where only the text (markdown)
    changed: its code cells keep their outputs, which are the same code's. Refuses a notebook whose code
    differs. Its path."""
    import nbformat

    path = NOTEBOOKS / f"{script.stem}.ipynb"
    if not path.is_file():
        sys.exit(f"make_notebooks: --text-only: {path.relative_to(ROOT)} does not exist yet: execute it first")
    committed, notebook = nbformat.read(path, as_version=4), with_answers(script)
    executed = [c for c in committed.cells if c.cell_type == "code"]
    if [c.source for c in executed] != [c.source for c in notebook.cells if c.cell_type == "code"]:
        sys.exit(f"make_notebooks: --text-only: {script.name}'s code or its answers' changed, so its outputs would "
                 f"not be its own: execute it again (without --text-only)")
    executed = iter(executed)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.update({k: v for k, v in next(executed).items() if k in ("outputs", "execution_count", "metadata")})
    notebook.metadata = committed.metadata
    path.write_text(nbformat.writes(notebook))
    return path


def figures_of(notebook):
    """{figure file name: its PNG bytes} for every figure a notebook shows (the tutorials print
    "figure: out/NAME.png" and then display it)."""
    import base64
    figures, name = {}, None
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("figure: "):
                    name = pathlib.Path(line.removeprefix("figure: ").strip()).name
            if "image/png" in output.get("data", {}) and name:
                figures[name] = base64.b64decode(output["data"]["image/png"])
    return figures


def write_picture(notebook_path):
    """Copy the tutorial's README picture (PICTURE) out of its executed notebook into tutorials/pictures/."""
    import nbformat
    number = notebook_path.stem.split("_")[0]
    figures = figures_of(nbformat.read(notebook_path, as_version=4))
    if PICTURE[number] not in figures:
        sys.exit(f"make_notebooks: {notebook_path.name} shows no {PICTURE[number]} (it shows: {', '.join(figures)})")
    PICTURES.mkdir(exist_ok=True)
    (PICTURES / PICTURE[number]).write_bytes(figures[PICTURE[number]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="tutorials by number or name (default: every notebook that exists)")
    parser.add_argument("--data-root", metavar="DIR", help="ISIC 2016 for the tutorials that use it (default: "
                        "synthetic lesions); passed to the kernel as MINUNET_DATA_ROOT")
    parser.add_argument("--xrays", metavar="DIR", help="chest X-rays for tutorial 10 (default: its synthetic "
                        "stand-in); passed to the kernel as MINUNET_XRAYS")
    parser.add_argument("--runs-from", metavar="DIR", help="start from a copy of this out/ folder: the runs a "
                        "tutorial finds there are read back (and said to be), not trained again")
    parser.add_argument("--keep", metavar="DIR", help="at the end, copy the out/ folder (figures and runs) to DIR, "
                        "for a later --runs-from")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    parser.add_argument("--text-only", action="store_true", help="the tutorials' text changed, not their code: "
                        "give their notebooks the new text and keep the outputs (nothing runs)")
    args = parser.parse_args(argv)
    data = {"MINUNET_DATA_ROOT": args.data_root, "MINUNET_XRAYS": args.xrays}
    for variable, folder in data.items():
        if folder and not pathlib.Path(folder).is_dir():
            sys.exit(f"make_notebooks: {folder} is not a folder")
    scripts = [find(name) for name in args.names] or [p for p in tutorials()
                                                      if (NOTEBOOKS / f"{p.stem}.ipynb").is_file()]
    if not scripts:
        sys.exit("make_notebooks: no notebook exists yet: name the tutorials to make, e.g. 01 02")
    for script in scripts:
        for variable in (v for v, folder in data.items() if folder):
            if variable not in script.read_text():
                sys.exit(f"make_notebooks: {script.name} does not read {variable}, so it would not see that folder: "
                         f"give it `default=os.environ.get(\"{variable}\")` first, or make it in its own command")
    if args.text_only:
        for script in scripts:
            print(f"{script.stem}: text -> {retext(script).relative_to(ROOT)}", flush=True)
        return
    with tempfile.TemporaryDirectory() as folder:  # one folder for all: 07 finds 06's run there, 07b 07's, 08 theirs
        if args.runs_from:  # runs of an earlier command's tutorials, which they read back instead of training
            shutil.copytree(args.runs_from, os.path.join(folder, "out"))
        for script in scripts:
            print(f"{script.stem}: executing ...", flush=True)
            path, seconds, size = make(script, data, args.timeout, folder)
            write_picture(path)
            print(f"{script.stem}: executed in {seconds:.0f} s, {size / 1e3:.0f} kB -> {path.relative_to(ROOT)}",
                  flush=True)
        if args.keep:
            shutil.copytree(os.path.join(folder, "out"), args.keep, dirs_exist_ok=True)


if __name__ == "__main__":
    main()
