"""A worker for tests/test_tutorials.py's quick check: imports what every tutorial imports once (torch, the
optimizers' torch._dynamo, matplotlib, minunet: 3 to 5 s a process), then runs each tutorial it is sent in a
fork of itself, so that each starts from the same freshly imported state, which no other tutorial touched.

Protocol, one line each way, one tutorial at a time: it reads `script<TAB>out_dir<TAB>log<TAB>seconds` on
stdin, runs `script --quick --out out_dir` from out_dir with its stdout in `log.out` and its stderr in
`log.err`, and answers its exit code on stdout once it has ended (after `seconds` the child writes its stack
to log.err and exits 1; 5 s later still, it is killed: -9).

Rules that keep the forks fresh, for whoever adds to the imports below: no torch operation that starts its
thread pool (a forked child would wait for it forever), no CUDA, no random numbers drawn, no thread started.
And a tutorial that uses `matplotlib.pyplot` or a minunet module without importing it would work here and not
under `python`: the notebooks, executed in fresh kernels, catch that.
"""
import faulthandler
import os
import runpy
import signal
import sys
import threading
import time
import traceback

import matplotlib

matplotlib.use("Agg")  # no window (tests/test_tutorials.py also sets MPLBACKEND=Agg for the tutorials)
import matplotlib.pyplot  # noqa: E402,F401  (imported here for the tutorials)
import torch  # noqa: E402
import torchvision  # noqa: E402,F401

import minunet.training.loop  # noqa: E402,F401

torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimizer built imports torch._dynamo (~2 s)


def run_forked(script, out_dir, log, seconds):
    """Run `script --quick --out out_dir` in a child process, as `python script` would; its exit code."""
    assert threading.active_count() == 1, "a thread in the worker: its forks would not be fresh"
    sys.stdout.flush()  # else the child inherits the unwritten bytes and writes them a second time
    pid = os.fork()
    if pid == 0:
        child(script, out_dir, log, seconds)
    deadline = time.monotonic() + seconds + 5
    while True:  # a deadline kept from outside too: a child stuck where faulthandler cannot act is still stopped
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        time.sleep(0.05)


def child(script, out_dir, log, seconds):
    """The forked process: the tutorial, then os._exit, never a return into the worker's loop (nor its exit
    handlers). Skipped, as os._exit skips them: atexit handlers; non-daemon threads are joined first."""
    code = 1
    try:
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, f"{log}.out", os.O_WRONLY | os.O_CREAT),
                                (2, f"{log}.err", os.O_WRONLY | os.O_CREAT)):
            os.dup2(os.open(path, flags | (os.O_TRUNC if fd else 0), 0o644), fd)  # stdin: nothing to read
        faulthandler.dump_traceback_later(seconds, exit=True)  # a hung tutorial: its stack in log.err
        os.chdir(out_dir)
        sys.argv = [script, "--quick", "--out", out_dir]  # as python sets them for `python script`
        sys.path[0] = os.path.dirname(script)
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as stop:  # sys.exit(...): None is 0, a number itself, anything else printed and 1
            if stop.code is None:
                code = 0
            elif isinstance(stop.code, int):
                code = stop.code
            else:
                print(stop.code, file=sys.stderr)
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
    except BaseException:  # noqa: BLE001  (the traceback, as python prints it, after what was printed)
        sys.stdout.flush()
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main():
    for line in sys.stdin:
        script, out_dir, log, seconds = line.rstrip("\n").split("\t")
        print(run_forked(script, out_dir, log, float(seconds)), flush=True)


if __name__ == "__main__":
    main()
