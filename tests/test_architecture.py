"""The house's walls (issue 33): the teaching core never imports the shell (import-linter's contract in setup.cfg,
which names every module of the core), no module imports another in a cycle, importing minunet changes nothing
in the process, each subpackage says what it offers, the loop reads in one sitting, and the code lints clean."""
import ast
import configparser
import importlib
import inspect
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minunet"
SUBPACKAGES = ("models", "data", "training", "cli")


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path):
    """The minunet modules that the file at `path` imports (relative imports made absolute)."""
    name, tree = module_name(path), ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "minunet":
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import recipe`
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "minunet")
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_core_never_imports_the_shell():
    result = subprocess.run(["lint-imports", "--config", str(ROOT / "setup.cfg")], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout + result.stderr


def test_the_contract_names_every_module_of_the_core():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    contract = config["importlinter:contract:core-knows-no-shell"]
    listed = set(contract["source_modules"].split())
    core = {f"minunet.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    core |= {f"minunet.{name}" for name in SUBPACKAGES if name != "cli"}
    assert listed == core and contract["forbidden_modules"].split() == ["minunet.cli"], listed ^ core
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(SUBPACKAGES)


def test_the_contract_catches_a_core_module_that_imports_the_shell(tmp_path):
    package = tmp_path / "house"
    for path, text in {"__init__.py": "", "core.py": "from .cli import parser\n", "cli/__init__.py": "",
                       "cli/parser.py": ""}.items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text(text)
    (tmp_path / "contract.ini").write_text(textwrap.dedent("""\
        [importlinter]
        root_package = house
        [importlinter:contract:walls]
        name = walls
        type = forbidden
        source_modules = house.core
        forbidden_modules = house.cli
        """))
    result = subprocess.run(["lint-imports", "--config", str(tmp_path / "contract.ini")], capture_output=True,
                            text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert result.returncode != 0 and "house.core is not allowed to import house.cli" in result.stdout, result.stdout


def cycle(graph):
    """One import cycle of `graph` ({module: modules it imports}) as a list, or None."""
    visiting, done = [], set()

    def visit(name):
        if name in visiting:
            return visiting[visiting.index(name):] + [name]
        if name in done:
            return None
        visiting.append(name)
        for dep in sorted(graph.get(name, ())):
            found = visit(dep)
            if found:
                return found
        visiting.pop()
        done.add(name)
        return None
    return next((found for found in map(visit, sorted(graph)) if found), None)


def test_the_core_names_no_flag():
    """Core errors, docstrings and comments speak of the core's own arguments (size, batch_size); only the shell
    turns them into flags (--size, --batch-size: minunet.cli.advice)."""
    core = [path for path in MODULES.values() if path.relative_to(PACKAGE).parts[0] != "cli"]
    flags = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for path in core
             for number, line in enumerate(path.read_text().splitlines(), start=1) if re.search(r"--[a-z{]", line)]
    assert len(core) > 30 and flags == [], "\n".join(flags)


def test_no_module_imports_another_in_a_cycle():
    # a subpackage's face (__init__) imports its modules: the edges counted are those between modules
    graph = {name: {m for m in imports_of(path) if m in MODULES and m != name and not
                    (path.name != "__init__.py" and name.startswith(m + "."))}
             for name, path in MODULES.items()}
    assert cycle(graph) is None, " -> ".join(cycle(graph))
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_importing_minunet_changes_nothing_in_the_process(tmp_path):
    # even in a process that looks like the command (its script is named minunet): the command's entry point,
    # not the package, takes over ctrl-C
    script = tmp_path / "minunet"
    script.write_text("import signal, sys\nimport minunet, minunet.cli, minunet.cli.entry\n"
                      "print('torch' in sys.modules, signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
                      "print(minunet.UNet.__module__, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as at a terminal
    assert out.stdout.split() == ["False", "True", "minunet.models.unet", "True"], out.stdout + out.stderr


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_lists_what_it_offers(name):
    package = importlib.import_module(f"minunet.{name}")
    assert package.__doc__ and package.__all__, f"minunet.{name} needs a docstring and __all__"
    for exported in package.__all__:
        assert getattr(package, exported) is not None, f"minunet.{name}.{exported}"


def test_the_loop_reads_in_one_sitting():
    from minunet.training import fit

    source = inspect.getsource(fit)
    body = ast.parse(textwrap.dedent(source)).body[0].body[1:]  # after the docstring
    assert body[-1].end_lineno - body[0].lineno + 1 <= 40, "fit's body is over 40 lines"
    assert len(inspect.signature(fit).parameters) <= 8
    assert len((PACKAGE / "training" / "loop.py").read_text().splitlines()) <= 200


def test_the_code_lints_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "minunet", "tests", "bench", "tutorials",
                             "hubconf.py"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
