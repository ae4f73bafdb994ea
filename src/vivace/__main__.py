"""``python -m vivace``: the async REPL, or a subcommand (``run``, ``trio-stand-in``).

See :mod:`vivace._cli`.
"""

from ._cli import main

raise SystemExit(main())
