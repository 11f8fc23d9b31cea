"""The `minunet` command's entry point (the console script and `python -m minunet`): ctrl-C at any moment
ends in one line on stderr, `minunet <command>: interrupted`, and exit code 130, never a traceback.

Three moments, three ways:
  start    importing torch and the CLI takes a second or two; a traceback from inside torch's import would
           be all the user sees. `quiet_start` (main's first step: importing minunet, minunet.cli and this
           module imports no torch) makes ctrl-C print the line and leave at once: nothing is written yet.
  command  ctrl-C raises KeyboardInterrupt, so the command stops cleanly: a checkpoint being written is
           removed, the files already there stay as they were (minunet.cli.parser.main prints the line).
  end      once the command has returned, ctrl-C leaves at once again (exit 130), output flushed.
This module imports no torch: it must be importable in the first milliseconds.
"""
import os
import re
import signal
import sys

INTERRUPTED = 130  # the shell's code for a command stopped by ctrl-C (128 + SIGINT)
COMMANDS = ("train", "evaluate", "predict", "export")


def is_the_command():
    """Whether this process is the `minunet` command: `python -m minunet ...` (sys.argv[0] is "-m" while
    Python finds the package, then the path of minunet/__main__.py) or the console script (named minunet), not
    a program that imports minunet."""
    path = sys.argv[0] if sys.argv else ""
    name = os.path.basename(path)
    return name == "-m" or path.endswith(os.path.join("minunet", "__main__.py")) or \
        re.sub(r"(-script\.pyw?|\.exe)$", "", name) == "minunet"


def interrupted_line():
    """'minunet <command>: interrupted', with the command named on the command line (if any)."""
    command = next((arg for arg in sys.argv[1:] if arg in COMMANDS), None)
    return f"minunet{' ' + command if command else ''}: interrupted"


def leave_now(signum=None, frame=None):
    """A SIGINT handler: whatever was printed to stdout flushed, one line on stderr, exit 130 at once."""
    exit_now(INTERRUPTED, interrupted_line() + "\n")


def exit_now(code, line=""):
    """Flush stdout, write `line` to stderr, and end the process with `code` at once (no interpreter shutdown)."""
    for stream, text in ((sys.stdout, ""), (sys.stderr, line)):
        try:  # the interrupted code may have been writing to the stream itself
            stream.write(text)
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def quiet_start():
    """While torch and the CLI are imported, ctrl-C prints one line and exits 130 (when this process is the
    command and SIGINT has Python's own handler: a program that imports minunet keeps its ctrl-C)."""
    if is_the_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, leave_now)


def main(argv=None):
    """Run the `minunet` command (see cli.main) with ctrl-C handled at every moment; the exit code.

    In the command's own process (see is_the_command) ctrl-C leaves at once after the command has returned;
    called from another program, its own SIGINT handler comes back.
    """
    quiet_start()
    before = signal.getsignal(signal.SIGINT)
    try:
        from .parser import main as run_command
        from ..device import use_free_cores

        use_free_cores()  # on a machine shared with other jobs, torch's threads only on the cores they leave
        if before is leave_now:  # the command stops through KeyboardInterrupt (SIG_IGN, say, is kept)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return run_command(argv)
    except KeyboardInterrupt:  # cli.main catches it inside the command; this is argparse, or between the two
        sys.stderr.write(interrupted_line() + "\n")
        return INTERRUPTED
    finally:  # also after argparse's SystemExit (--help, a bad flag)
        signal.signal(signal.SIGINT, before)  # the end (leave_now in the command): no shutdown half done
