"""``python -m vivace``: see :mod:`vivace._cli`."""

from ._cli import main

raise SystemExit(main())
