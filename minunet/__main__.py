"""`python -m minunet ...` is the same as the `minunet` command."""
from .entry import INTERRUPTED, exit_now, main

code = main()
if code == INTERRUPTED:
    # Under `python -m`, CPython (3.11 here) ends a process by its own SIGINT (exit status -2 to the program that
    # started it) when the ctrl-C landed inside code run by exec() of a string (dataclasses make their methods so,
    # and torch imports many of them at the first optimizer step), even after the command caught it and returned
    # 130. Leaving at once keeps 130, as the console script has.
    exit_now(INTERRUPTED)
raise SystemExit(code)
