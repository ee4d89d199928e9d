"""`python -m vml ...`: see `vml.cli`."""
from .cli import main

raise SystemExit(main())
