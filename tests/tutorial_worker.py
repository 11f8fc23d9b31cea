"""A worker for tests/test_tutorials.py's quick check: imports what every tutorial imports once (torch, the
optimizers' torch._dynamo, matplotlib, minunet: 3 to 5 s a process), then runs each tutorial it is sent in a
fork of itself, so that each still starts from a process no other tutorial has touched.

Protocol, one line each way: it reads `script<TAB>out_dir<TAB>log` on stdin, runs `script --quick --out out_dir`
from out_dir with its stdout and stderr in the file `log`, and answers the exit code on stdout.
"""
import os
import runpy
import signal
import sys
import traceback

import matplotlib

matplotlib.use("Agg")  # as MPLBACKEND=Agg: no window
import matplotlib.pyplot  # noqa: E402,F401  (imported here for the tutorials)
import torch  # noqa: E402
import torchvision  # noqa: E402,F401

import minunet.train  # noqa: E402,F401

torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimizer built imports torch._dynamo (~2 s)
TIMEOUT = 240  # seconds a tutorial may run, as test_tutorials.launch allows


def run_tutorial(script, out_dir, log):
    """Run `script --quick --out out_dir` in a child process, as `python script` would; its exit code."""
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # -14: killed by the alarm below
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)  # the child: its output into `log`, as 2>&1 would
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    signal.alarm(TIMEOUT)
    os.chdir(out_dir)
    sys.argv, sys.path[0] = [script, "--quick", "--out", out_dir], os.path.dirname(script)
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:  # sys.exit(...): None is 0, a message is printed and is 1
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001  (anything else: the traceback, as python prints it)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


for line in sys.stdin:
    print(run_tutorial(*line.rstrip("\n").split("\t")), flush=True)
