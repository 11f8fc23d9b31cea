"""minunet promises to be NumPy-free: no module of the package may import it."""
import ast
import pathlib

import minunet

PACKAGE = pathlib.Path(minunet.__file__).parent


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_module_imports_numpy():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) >= 5, f"found only {sources} under {PACKAGE}"
    offenders = [f"{p.name}: {name}" for p in sources for name in imported_modules(p)
                 if name == "numpy" or name.startswith("numpy.")]
    assert not offenders, offenders


def test_the_walker_finds_numpy_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nif True:\n    from numpy import zeros\n")
    assert "numpy" in list(imported_modules(bad))
