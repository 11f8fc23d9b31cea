"""`python -m minunet ...` is the same as the `minunet` command."""
from .cli.entry import INTERRUPTED, exit_now, main

code = main()
if code == INTERRUPTED:
    # A ctrl-C that landed inside code run by exec() of a string (dataclasses make their methods so, and torch
    # makes many at the first optimizer step) leaves a flag in CPython (3.11 here) that `python -m` checks after
    # shutdown: it would kill the process by SIGINT (subprocess sees -2) although the command returned 130. A
    # script's SystemExit (the console script's) exits before that check; leaving at once keeps 130 here too.
    exit_now(INTERRUPTED)
raise SystemExit(code)
