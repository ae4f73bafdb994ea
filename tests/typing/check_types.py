"""scripts/typecheck's body: type-check user code against vivace as against real trio.

1. ``sample_program.py`` (an ordinary program, ``import vivace as trio``) must give 0
   errors with ``mypy --strict`` and with pyright in strict mode; so must the same file
   with ``vivace`` replaced by ``trio``, checked against real trio 0.35.0 (the oracle
   installed in the venv), so the sample shows nothing trio would not accept either.
2. ``expected_errors.py`` must give errors on exactly its lines marked ``# error``, with
   both tools, against vivace and against trio: vivace's types reject what trio's do.
3. ``pyright --verifytypes`` completeness of vivace must be at least the floor recorded in
   ``verifytypes-floor`` and at least trio's, measured live with the same pyright.

Run as ``scripts/typecheck`` (which uses the repository's .venv). Exit 0: all good.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = ROOT / os.environ.get("VIVACE_VENV", ".venv")
BIN = VENV / "bin"
PYRIGHT_CONFIG = HERE / "pyrightconfig.json"
MYPY_CONFIG = HERE / "mypy.ini"
FLOOR_FILE = HERE / "verifytypes-floor"
PROGRAMS = ("sample_program", "expected_errors")
ERROR_MARK = "# error"


def as_trio(source: str) -> str:
    """The same program against real trio: every ``vivace`` becomes ``trio``."""
    return re.sub(r"\bvivace\b", "trio", source)


def marked_lines(source: str) -> set[int]:
    return {n for n, line in enumerate(source.splitlines(), 1) if line.rstrip().endswith(ERROR_MARK)}


def tool_env() -> dict[str, str]:
    # pyright finds the interpreter (and so site-packages) through PATH; --verifytypes
    # ignores --pythonpath and the project's venv settings.
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True)


def mypy_errors(files: list[Path], workdir: Path) -> dict[Path, list[tuple[int, str]]]:
    """mypy --strict, as a user's project with no other settings would run it."""
    result = run(
        [
            str(BIN / "mypy"),
            "--strict",
            "--config-file",
            str(MYPY_CONFIG),
            "--cache-dir",
            str(workdir / "mypy-cache"),
            "--no-pretty",
            "--no-error-summary",
            *map(str, files),
        ],
        cwd=workdir,
    )
    if result.returncode not in (0, 1) or result.stderr.strip():
        sys.exit(f"mypy failed to run:\n{result.stdout}{result.stderr}")
    found: dict[Path, list[tuple[int, str]]] = {path: [] for path in files}
    for line in result.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): error: (.*)", line)
        if match:
            path = (workdir / match[1]).resolve()
            found.setdefault(path, []).append((int(match[2]), match[3]))
    return found


def pyright_errors(files: list[Path], workdir: Path) -> dict[Path, list[tuple[int, str]]]:
    result = run(
        [str(BIN / "pyright"), "--project", str(PYRIGHT_CONFIG), "--outputjson", *map(str, files)],
        cwd=workdir,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        sys.exit(f"pyright failed to run:\n{result.stdout}{result.stderr}")
    found: dict[Path, list[tuple[int, str]]] = {path: [] for path in files}
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            path = Path(diagnostic["file"]).resolve()
            line = diagnostic["range"]["start"]["line"] + 1
            found.setdefault(path, []).append((line, diagnostic["message"].splitlines()[0]))
    return found


def verifytypes(package: str, workdir: Path) -> tuple[float, Path]:
    result = run(
        [str(BIN / "pyright"), "--verifytypes", package, "--ignoreexternal", "--outputjson"],
        cwd=workdir,
    )
    try:
        completeness = json.loads(result.stdout)["typeCompleteness"]
    except (json.JSONDecodeError, KeyError):
        sys.exit(f"pyright --verifytypes {package} failed:\n{result.stdout}{result.stderr}")
    return completeness["completenessScore"] * 100, Path(completeness["packageRootDirectory"])


def read_floor() -> float:
    for line in FLOOR_FILE.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2 and fields[0] == "vivace":
            return float(fields[1])
    sys.exit(f"{FLOOR_FILE} has no 'vivace <percent>' line")


def main() -> int:
    started = time.monotonic()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vivace-typecheck-") as tmp:
        workdir = Path(tmp)
        files: dict[tuple[str, str], Path] = {}
        expected: dict[Path, set[int]] = {}
        for name in PROGRAMS:
            source = (HERE / f"{name}.py").read_text()
            files[name, "vivace"] = HERE / f"{name}.py"
            files[name, "trio"] = workdir / f"{name}_trio.py"
            files[name, "trio"].write_text(as_trio(source))
            for library in ("vivace", "trio"):
                expected[files[name, library]] = marked_lines(source)

        checked = list(files.values())
        for tool, errors in (
            ("mypy --strict", mypy_errors(checked, workdir)),
            ("pyright (strict)", pyright_errors(checked, workdir)),
        ):
            for (name, library), path in files.items():
                found = errors.get(path.resolve(), [])
                lines = {line for line, _ in found}
                print(f"{tool:17} {name:16} against {library:6}: {len(found)} errors on {len(lines)} lines")
                if lines != expected[path]:
                    failures.append(
                        f"{tool} on {name} against {library}: errors on lines "
                        f"{sorted(lines)}, expected {sorted(expected[path])}"
                    )
                    if lines - expected[path]:
                        failures.extend(
                            f"    {path.name}:{line}: {message}"
                            for line, message in found
                            if line not in expected[path]
                        )

        vivace_score, vivace_root = verifytypes("vivace", workdir)
        trio_score, trio_root = verifytypes("trio", workdir)
    floor = read_floor()
    print(f"verifytypes completeness: vivace {vivace_score:.2f}% ({vivace_root})")
    print(f"verifytypes completeness: trio   {trio_score:.2f}% ({trio_root})")
    print(f"verifytypes floor for vivace: {floor:.2f}% ({FLOOR_FILE.relative_to(ROOT)})")
    if vivace_root != ROOT / "src" / "vivace":
        failures.append(f"pyright resolved vivace at {vivace_root}, not this checkout's src/vivace")
    if vivace_score + 1e-9 < floor:
        failures.append(f"vivace's completeness {vivace_score:.2f}% is below the floor {floor:.2f}%")
    if vivace_score + 1e-9 < trio_score:
        failures.append(f"vivace's completeness {vivace_score:.2f}% is below trio's {trio_score:.2f}%")

    print(f"typecheck took {time.monotonic() - started:.1f} s")
    if failures:
        print("FAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    print("typecheck: all good")
    return 0


if __name__ == "__main__":
    sys.exit(main())
