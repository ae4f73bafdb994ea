"""A ``trio`` distribution for pip, backed by vivace: ``python -m vivace trio-stand-in``.

pytest-trio, trio-websocket, hypercorn's trio extra and others declare a dependency on
``trio``. pip satisfies a requirement only with an installed distribution of that name,
so without help ``pip install pytest-trio`` next to vivace pulls in the real trio. The
stand-in is a tiny wheel, ``trio-<version>+vivace``, whose only module is a guard:

* with :func:`vivace.install` in effect, vivace's import hook comes first and the guard
  never runs; ``importlib.metadata`` answers from vivace's in-memory metadata, which
  says exactly the trio version vivace implements;
* without it, ``import trio`` fails with an ImportError that says how to install vivace,
  rather than a program finding no trio, or half of one.

The local version label ``+vivace`` satisfies any ``trio>=``/``==`` requirement that the
plain version does (PEP 440 ignores local labels in such specifiers) and shows in
``pip list`` what it is. It does not require vivace (it is made by an installed vivace, for
that environment; pip would otherwise re-resolve vivace on every later install), and it
declares no entry points: Hypothesis imports every entry point
at start-up, and the guard would fail there; vivace registers its own Hypothesis hook.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import zipfile

from ._install import TRIO_VERSION

STAND_IN_VERSION = f"{TRIO_VERSION}+vivace"

_GUARD = '''\
"""Placeholder for trio, installed by 'python -m vivace trio-stand-in'."""

raise ImportError(
    "this environment's 'trio' is vivace's stand-in, which works only once vivace is "
    "installed as trio: call vivace.install() first thing in the program (before "
    "anything imports trio), or run it with 'python -m vivace run script.py', or run "
    "pytest with '-p vivace.install_plugin'. To use the real trio instead: "
    "pip install --force-reinstall trio"
)
'''


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(output_dir: str) -> str:
    """Write the stand-in wheel into ``output_dir``; return its path."""
    from ._version import __version__

    dist_info = f"trio-{STAND_IN_VERSION}.dist-info"
    files = {
        "trio/__init__.py": _GUARD.encode(),
        f"{dist_info}/METADATA": (
            "Metadata-Version: 2.1\n"
            "Name: trio\n"
            f"Version: {STAND_IN_VERSION}\n"
            f"Summary: Stand-in for trio {TRIO_VERSION}: satisfies pip, defers to vivace "
            "(vivace.install())\n"
            "Requires-Python: >=3.11\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\n"
            f"Generator: vivace {__version__}\n"
            "Root-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ).encode(),
        f"{dist_info}/top_level.txt": b"trio\n",
    }
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()

    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, f"trio-{STAND_IN_VERSION}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            # A fixed timestamp: the same vivace builds the same bytes.
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return path


def real_trio_version() -> str | None:
    """The version of a real trio installed in this environment, if any."""
    from ._install import _TrioStandInDistribution

    for dist in importlib.metadata.distributions(name="trio"):
        if isinstance(dist, _TrioStandInDistribution):
            continue
        version = dist.version
        if not version.endswith("+vivace"):
            return version
    return None


def pip_install(wheel: str) -> int:
    """pip-install the stand-in into this interpreter's environment, unless trio is there."""
    real = real_trio_version()
    if real is not None:
        print(
            f"python -m vivace trio-stand-in: the real trio {real} is installed here; it "
            "already satisfies pip, and vivace.install() takes precedence over it at "
            "import time, so the stand-in is not needed (pip would replace trio with it). "
            f"To replace it anyway: {sys.executable} -m pip uninstall trio, then install "
            f"{wheel}",
            file=sys.stderr,
        )
        return 1
    return subprocess.call([sys.executable, "-m", "pip", "install", wheel])
