"""docs/api.md stays true: every name it lists imports and has a docstring, and every name minunet exports is listed."""
import importlib
import inspect
import pathlib
import re

import pytest

import minunet

API_MD = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.md"
PLAIN_VALUES = (str, int, float, tuple, list, dict, frozenset)  # constants: they cannot carry a docstring


def parse_api(text):
    """[(module, dotted name, line number)] for each `- `name`: ...` bullet, under its `## `module`` heading.

    A name that starts with "minunet." is absolute; any other is looked up in the heading's module.
    """
    entries, module = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        heading = re.match(r"##\s+(.*)", line)
        if heading:
            first = re.search(r"`([\w.]+)`", heading.group(1))
            module = first.group(1) if first else None
            continue
        bullet = re.match(r"-\s+`([\w.]+)`\s*:\s*\S", line)
        if bullet:
            name = bullet.group(1)
            if name.startswith("minunet."):
                # absolute: the longest importable prefix is the module
                parts = name.split(".")
                for cut in range(len(parts) - 1, 0, -1):
                    try:
                        importlib.import_module(".".join(parts[:cut]))
                    except ImportError:
                        continue
                    entries.append((".".join(parts[:cut]), ".".join(parts[cut:]), number))
                    break
                else:
                    entries.append((name, "", number))
            else:
                entries.append((module, name, number))
    return entries


def resolve(module, name):
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


ENTRIES = parse_api(API_MD.read_text())


def test_api_md_lists_the_library():
    assert len(ENTRIES) >= 60, f"only {len(ENTRIES)} entries parsed from {API_MD}"
    modules = {m for m, _, _ in ENTRIES}
    for module in ("minunet", "minunet.transforms", "minunet.losses", "minunet.metrics", "minunet.data",
                   "minunet.training.loop", "minunet.plots"):
        assert module in modules, f"docs/api.md has no section for {module}"
    names = [(m, n) for m, n, _ in ENTRIES]
    duplicates = {x for x in names if names.count(x) > 1}
    assert not duplicates, f"listed twice in docs/api.md: {duplicates}"


@pytest.mark.parametrize("module,name,line", ENTRIES, ids=[f"{m}.{n}" for m, n, _ in ENTRIES])
def test_listed_name_imports_and_has_a_docstring(module, name, line):
    assert module is not None, f"docs/api.md line {line}: `{name}` is under a heading that names no module"
    try:
        obj = resolve(module, name)
    except (ImportError, AttributeError) as err:
        pytest.fail(f"docs/api.md line {line}: {module}.{name} does not import: {err}")
    if isinstance(obj, PLAIN_VALUES):
        return  # a constant, e.g. IMAGENET_MEAN: it imports, and a value has no docstring of its own
    assert callable(obj), f"docs/api.md line {line}: {module}.{name} is a {type(obj).__name__}"
    doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
    assert doc and doc.strip(), f"{module}.{name} (docs/api.md line {line}) has no docstring"


def test_every_name_minunet_exports_is_listed():
    exported = {n for n, obj in vars(minunet).items() if not n.startswith("_") and not inspect.ismodule(obj)}
    assert {"UNet", "ResNet34UNet", "ResNet34Encoder"} <= exported
    listed = {n for m, n, _ in ENTRIES if m == "minunet"}
    missing = sorted(exported - listed)
    assert not missing, f"exported by minunet/__init__.py but not in docs/api.md's `minunet` section: {missing}"


def test_the_parser_catches_a_bad_entry():
    # a name that does not exist, and one in a heading with no module, are both reported
    text = "## `minunet.losses`: x\n- `no_such_loss`: gone\n## Words\n- `stray`: no module\n"
    entries = parse_api(text)
    assert entries == [("minunet.losses", "no_such_loss", 2), (None, "stray", 4)]
    with pytest.raises(AttributeError):
        resolve(*entries[0][:2])


def test_the_core_on_one_page_names_what_its_modules_offer():
    text = API_MD.read_text()
    table = text[text.index("# Part 1: the teaching core"):text.index("\n## ")]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) >= 8, table
    for modules, names in rows:
        modules = [importlib.import_module(m) for m in re.findall(r"`([\w.]+)`", modules)]
        for name in re.findall(r"\b[A-Za-z_]\w*\b", re.sub(r"\(.*?\)", "", names)):
            if name in ("the", "layers", "above", "ISIC", "folder", "names"):
                continue
            assert any(hasattr(m, name) for m in modules), f"docs/api.md's one page: {name} is not in {modules}"
    assert "# Part 2: the shell" in text
