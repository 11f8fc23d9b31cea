"""`python -m minunet ...` is the same as the `minunet` command."""
from .entry import main

raise SystemExit(main())
