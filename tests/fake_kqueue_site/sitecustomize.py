"""Installs tests/_fake_kqueue.py's kqueue emulation into ``select`` at interpreter
start, so that a whole run (the suite, trio's conformance suite, their subprocesses)
can use the kqueue backend on Linux:

    PYTHONPATH=<repo>/tests/fake_kqueue_site:<repo>/src VIVACE_TEST_FAKE_KQUEUE=1 \\
        VIVACE_IO_BACKEND=kqueue VIVACE_NO_EXTENSIONS=1 python -m pytest tests

Nothing happens unless VIVACE_TEST_FAKE_KQUEUE=1, nor where select has a real kqueue.
"""

import os
import select
import sys

if os.environ.get("VIVACE_TEST_FAKE_KQUEUE") == "1" and not hasattr(select, "kqueue"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        import _fake_kqueue
    finally:
        del sys.path[0]
    _fake_kqueue.install(select)
