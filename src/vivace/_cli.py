"""``python -m vivace``: an async REPL, and running trio programs on vivace unchanged.

    python -m vivace                              # async REPL, as 'python -m trio'
    python -m vivace run script.py [args...]      # as 'python script.py', on vivace
    python -m vivace run -m package.module [args...]
    python -m vivace trio-stand-in [--output DIR] [--install]

With no arguments it starts the interactive console of :mod:`vivace._repl`, where
top-level ``await`` works inside one long-lived :func:`vivace.run`. ``run`` calls
:func:`vivace.install` and then runs the program as ``__main__`` with the ``sys.argv``
and ``sys.path[0]`` it would have had if started by Python itself.
``trio-stand-in`` writes (and optionally pip-installs) the wheel described in
:mod:`vivace._stand_in`.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

USAGE = """\
usage: python -m vivace
       python -m vivace run SCRIPT [ARGS...]
       python -m vivace run -m MODULE [ARGS...]
       python -m vivace trio-stand-in [--output DIR] [--install]

  (no command)   interactive console where 'await' works at the prompt, running in one
                 vivace.run (as 'python -m trio'); Ctrl-C cancels the running statement
  run            run a trio (or anyio-on-trio) program on vivace, unchanged:
                 vivace.install() first, then the program as __main__
  trio-stand-in  build a wheel that gives pip a 'trio' distribution backed by vivace,
                 so that 'pip install pytest-trio' (or anything requiring trio) does
                 not pull in the real trio; --install also pip-installs it
"""


def _fail(message: str) -> int:
    print(f"python -m vivace: {message}", file=sys.stderr)
    print(USAGE, file=sys.stderr, end="")
    return 2


def _run(args: Sequence[str]) -> int:
    from ._install import install

    if not args:
        return _fail("'run' needs a script path or '-m MODULE'")
    if args[0] == "-m":
        if len(args) < 2:
            return _fail("'run -m' needs a module name")
        module, rest = args[1], list(args[2:])
        install()
        # As 'python -m': argv[0] becomes the module's path (run_module sets it); the
        # current directory stays first on sys.path, where 'python -m vivace' put it.
        sys.argv = [module, *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    if args[0].startswith("-"):
        return _fail(f"unknown option {args[0]!r} for 'run'")
    script, rest = args[0], list(args[1:])
    if not os.path.exists(script):
        print(
            f"python -m vivace run: can't open file {os.path.abspath(script)!r}: "
            "No such file or directory",
            file=sys.stderr,
        )
        return 2
    install()
    sys.argv = [script, *rest]
    # As 'python script.py': the script's directory, not ours, is first on sys.path.
    sys.path[0] = os.path.dirname(os.path.realpath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


def _stand_in(args: Sequence[str]) -> int:
    from ._stand_in import build_wheel, pip_install

    output = "."
    do_install = False
    it = iter(args)
    for arg in it:
        if arg == "--install":
            do_install = True
        elif arg == "--output":
            output = next(it, "")
            if not output:
                return _fail("'--output' needs a directory")
        elif arg.startswith("--output="):
            output = arg.split("=", 1)[1]
        else:
            return _fail(f"unknown argument {arg!r} for 'trio-stand-in'")
    wheel = build_wheel(output)
    print(f"wrote {wheel}")
    if do_install:
        return pip_install(wheel)
    print(f"install it with: {sys.executable} -m pip install {wheel}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        from ._repl import main as repl

        return repl()
    if args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = args[0], args[1:]
    if command == "run":
        return _run(rest)
    if command == "trio-stand-in":
        return _stand_in(rest)
    return _fail(f"unknown command {command!r}")
