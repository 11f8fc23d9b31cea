"""Issue 23, case 2: ctrl-C at any moment of the `minunet` command (while torch is imported, while the command
runs, as it ends) is one line on stderr and exit code 130, never a traceback; the files in --out are kept."""
import configparser
import os
import signal
import subprocess
import sys
import time

import pytest

from minunet.cli import entry
from test_robustness import ENV, TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow  # a dozen subprocesses


def console_script(folder):
    """The script pip writes for setup.cfg's console_scripts entry `minunet` (its text, as pip makes it)."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    line = config["options.entry_points"]["console_scripts"].strip()
    name, target = (part.strip() for part in line.split("="))
    module, function = target.split(":")
    script = folder / name
    script.write_text(f"import re\nimport sys\nfrom {module} import {function}\nif __name__ == '__main__':\n"
                      f"    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                      f"    sys.exit({function}())\n")
    return [sys.executable, str(script)]


def python_start():
    """Seconds Python itself takes to start here (before any of minunet's code can run)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=ENV, check=True)
    return time.perf_counter() - t0


def default_ctrl_c():
    """Run in each child before it starts: SIGINT back to its default action. A shell that runs a job in the
    background, nohup and some CI runners start it with SIGINT ignored, which every child inherits, and then a
    ctrl-C would do nothing; a user at a terminal has the default, and Python turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(command, delay, out):
    """Start `command train ...` into `out`, send SIGINT after `delay` s; (exit code, stderr)."""
    p = subprocess.Popen([*command, "train", *TINY, "--limit", "48", "--epochs", "50", "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(ENV, PYTHONPATH=ROOT), cwd=ROOT, preexec_fn=default_ctrl_c)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    return p.returncode, err


@pytest.mark.parametrize("launcher", ["python -m minunet", "console script"])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(tmp_path, launcher):
    command = [sys.executable, "-m", "minunet"] if launcher == "python -m minunet" else console_script(tmp_path)
    start = python_start()
    # 0.05 s into the import of torch, then mid-import, as the command begins, and while it trains (epoch 1+)
    for moment in (0.05, 0.3, 1.0, 4.0):
        out = tmp_path / f"run_{moment}"
        out.mkdir()
        (out / "notes.txt").write_text("the user's notes")
        code, err = interrupt(command, start + moment, out)
        assert "Traceback" not in err, (moment, err)
        assert err.strip().splitlines() == ["minunet train: interrupted"], (moment, err)
        assert code == 130, (moment, code, err)
        assert (out / "notes.txt").read_text() == "the user's notes"


@pytest.mark.parametrize("argv,line", [
    (["predict", "--checkpoint", "x.pt", "--input", "in", "--output", "out"], "minunet predict: interrupted"),
    (["evaluate", "--checkpoint", "x.pt"], "minunet evaluate: interrupted"),
    (["--help"], "minunet: interrupted"),
])
def test_ctrl_c_while_torch_imports_names_the_command(argv, line):
    p = subprocess.Popen([sys.executable, "-m", "minunet", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env=dict(ENV, PYTHONPATH=ROOT), cwd=ROOT, preexec_fn=default_ctrl_c)
    time.sleep(python_start() + 0.3)  # inside torch's import (it takes a second or more)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 130 and err.strip().splitlines() == [line], err


# A finder that makes `minunet train` raise KeyboardInterrupt from code run by exec() of a string, as a ctrl-C
# does when it lands while a dataclass is made (torch makes many at the first optimizer step): the moment that
# once ended `python -m minunet` by SIGINT (exit -2) in 3 of 60 runs (bench/ctrl_c.py, bench/RESULTS.md).
CTRL_C_IN_EXEC = """
import importlib.machinery, sys
class Finder:
    def find_spec(self, name, path, target=None):
        if name != "minunet.cli.parser":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        load = spec.loader.exec_module
        def exec_module(module):
            load(module)
            assert hasattr(module, "train_command")  # the command replaced below
            module.train_command = lambda args: exec("raise KeyboardInterrupt")
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Finder())
"""


@pytest.mark.parametrize("launcher", ["python -m minunet", "console script"])
def test_ctrl_c_inside_code_run_by_exec_is_exit_130(tmp_path, launcher):
    (tmp_path / "sitecustomize.py").write_text(CTRL_C_IN_EXEC)
    command = [sys.executable, "-m", "minunet"] if launcher == "python -m minunet" else console_script(tmp_path)
    p = subprocess.run([*command, "train", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                       env=dict(ENV, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT])), cwd=ROOT, timeout=120,
                       preexec_fn=default_ctrl_c)
    assert (p.returncode, p.stderr.strip().splitlines()) == (130, ["minunet train: interrupted"]), p.stderr


def test_the_console_script_and_python_m_go_through_the_entry_point():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    assert config["options.entry_points"]["console_scripts"].split() == ["minunet", "=", "minunet.cli.entry:main"]
    with open(os.path.join(ROOT, "minunet", "__main__.py")) as f:
        text = f.read()
    assert "from .cli.entry import INTERRUPTED, exit_now, main" in text and "code = main()" in text


@pytest.fixture
def terminal_ctrl_c():
    """SIGINT with Python's own handler, as a program started at a terminal has it (this test process may have
    been started with SIGINT ignored); the handler it had comes back after the test."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_only_the_command_takes_over_ctrl_c(monkeypatch, terminal_ctrl_c):
    """A program that imports minunet keeps its own ctrl-C: KeyboardInterrupt, as Python gives it."""
    for argv0, command in [("-m", True), ("/src/minunet/__main__.py", True), ("/usr/bin/minunet", True),
                           ("/env/bin/minunet.exe", True),
                           ("minunet-script.py", True), ("train.py", False), ("-c", False), ("", False)]:
        monkeypatch.setattr(sys, "argv", [argv0])
        assert entry.is_the_command() == command, argv0
    monkeypatch.setattr(sys, "argv", ["-c"])
    entry.quiet_start()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(SystemExit) as exit_:
        entry.main(["train", "--epochs", "0"])  # a bad flag
    assert exit_.value.code == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # as it was before main


def test_the_interrupted_line_names_the_command(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["minunet", "evaluate", "--checkpoint", "x.pt"])
    assert entry.interrupted_line() == "minunet evaluate: interrupted"
    monkeypatch.setattr(sys, "argv", ["minunet", "--help"])
    assert entry.interrupted_line() == "minunet: interrupted"
