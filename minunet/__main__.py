"""`python -m minunet ...` is the same as the `minunet` command."""
from .cli import main

raise SystemExit(main())
