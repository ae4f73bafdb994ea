"""scripts/ci is the one CI definition: .ci/run runs `scripts/ci all`, and the GitHub
workflow must invoke every step of `all` itself, so the two definitions cannot drift.

The files are read as text (PyYAML is not a test dependency); the workflow's `run:`
values are taken from their lines, which is all this needs of YAML.
"""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ci"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
CI_RUN = ROOT / ".ci" / "run"

# Steps that use the project's .venv as it is: a job must create it first.
NEEDS_VENV = {"pythons", "memcheck", "soak", "lint", "typing", "package", "conformance", "anyio"}


def _read(path: pathlib.Path) -> str:
    return path.read_text(encoding="utf-8")


def _all_steps() -> list[str]:
    found = re.findall(r'^ALL_STEPS="([^"]*)"$', _read(SCRIPT), re.MULTILINE)
    assert len(found) == 1, "scripts/ci must declare ALL_STEPS=\"...\" exactly once"
    return found[0].split()


def _runs_by_job(text: str) -> dict[str, list[str]]:
    """Each job's `run:` values in order, inline (`run: cmd`) or block (`run: |`)."""
    runs: dict[str, list[str]] = {}
    lines = text.splitlines()
    in_jobs = False
    job = None
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if re.match(r"^\S", line):
            in_jobs = line.rstrip() == "jobs:"
            continue
        job_match = re.match(r"^  ([\w-]+):\s*$", line)
        if in_jobs and job_match:
            job = job_match[1]
            runs[job] = []
            continue
        run_match = re.match(r"^(\s*)(?:- )?run:\s*(.*)$", line)
        if not (in_jobs and job and run_match):
            continue
        value = run_match[2].strip()
        if value and value[0] not in "|>":
            runs[job].append(value)
            continue
        key_indent = len(run_match[1])
        block = []
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > key_indent):
            block.append(lines[i].strip())
            i += 1
        runs[job].append("\n".join(block))
    return runs


def _ci_invocations(command: str) -> list[str]:
    """The step names given to scripts/ci in a shell command, in order."""
    steps = []
    for line in command.splitlines():
        for piece in re.split(r"&&|\|\||;", line.split(" #")[0]):
            match = re.match(r"\s*\S*scripts/ci((?:\s+[\w-]+)*)\s*$", piece)
            if match:
                steps.extend(match[1].split())
    return steps


def test_scripts_ci_declares_each_step_once_with_a_handler() -> None:
    steps = _all_steps()
    assert len(steps) == len(set(steps)), steps
    text = _read(SCRIPT)
    for step in [*steps, "setup"]:
        assert re.search(rf"^step_{step}\(\) \{{$", text, re.MULTILINE), f"no step_{step}()"
    # tests and the debug build are what CI is for; the rest may grow
    assert {"test", "lint", "conformance", "debug"} <= set(steps)


def test_the_workflow_invokes_every_step_of_scripts_ci_all() -> None:
    runs = _runs_by_job(_read(WORKFLOW))
    invoked = [step for commands in runs.values() for c in commands for step in _ci_invocations(c)]
    missing = [step for step in _all_steps() if step not in invoked]
    assert not missing, f"ci.yml never runs `scripts/ci {' '.join(missing)}`"
    unknown = sorted(set(invoked) - {*_all_steps(), "setup"})
    assert not unknown, f"ci.yml runs steps scripts/ci does not have: {unknown}"


def test_each_workflow_job_sets_up_the_venv_before_a_step_that_needs_it() -> None:
    for job, commands in _runs_by_job(_read(WORKFLOW)).items():
        seen_setup = False
        for step in (s for c in commands for s in _ci_invocations(c)):
            if step == "setup":
                seen_setup = True
            assert step not in NEEDS_VENV or seen_setup, (
                f"job {job!r} runs `scripts/ci {step}` without `scripts/ci setup` before it"
            )


def test_ci_run_is_only_a_wrapper_of_scripts_ci_all() -> None:
    commands = [
        line.strip() for line in _read(CI_RUN).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[0] == "set -euo pipefail"
    assert len(commands) == 2, commands
    assert re.fullmatch(r'exec "\$\(.*\)/scripts/ci" all', commands[1]), commands[1]


def test_the_run_extraction_reads_inline_and_block_values() -> None:
    text = (
        "on:\n  push:\n    run: not-a-job\n"
        "jobs:\n"
        "  a:\n    steps:\n      - run: scripts/ci setup\n"
        "      - name: x\n        run: |\n          echo hi\n\n          scripts/ci lint  # c\n"
        "        env:\n          X: 1\n"
        "  b:\n    steps:\n      - run: >-\n          true && scripts/ci test\n"
    )
    runs = _runs_by_job(text)
    assert runs == {"a": ["scripts/ci setup", "echo hi\n\nscripts/ci lint  # c"],
                    "b": ["true && scripts/ci test"]}
    assert [s for c in runs["a"] for s in _ci_invocations(c)] == ["setup", "lint"]
    assert _ci_invocations(runs["b"][0]) == ["test"]


# ------------------------------------------------------------------ the summary


def _fake_tree(tmp_path: pathlib.Path, ruff: str, mypy: str) -> pathlib.Path:
    """scripts/ci in a scratch tree whose .venv tools are the given shell scripts."""
    import shutil

    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "ci")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in (("python", "exit 0"), ("ruff", ruff), ("mypy", mypy)):
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(0o755)
    return tmp_path / "scripts" / "ci"


def _run_lint(script: pathlib.Path) -> tuple[int, str]:
    import subprocess

    done = subprocess.run(
        ["bash", str(script), "lint"], capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_a_failed_step_without_test_lines_does_not_end_the_run(tmp_path: pathlib.Path) -> None:
    # A step that fails printing no pytest FAILED line (check-package, say) once ended
    # `scripts/ci all` through set -e, skipping every later step and the summary.
    script = _fake_tree(tmp_path, ruff="echo 'lint trouble'; exit 3", mypy="echo mypy-ran")
    code, out = _run_lint(script)
    assert code == 1, out
    assert "mypy-ran" in out  # the next step still ran
    assert "  - ruff check src (exit 3)" in out
    assert out.rstrip().endswith("steps: 1 passed, 1 failed"), out


def test_the_summary_names_the_failing_tests_of_a_failed_step(tmp_path: pathlib.Path) -> None:
    script = _fake_tree(
        tmp_path,
        ruff="echo 'FAILED tests/test_x.py::test_y - AssertionError: boom'; exit 1",
        mypy="exit 0",
    )
    code, out = _run_lint(script)
    assert code == 1, out
    summary = out[out.index("## ci: summary") :]
    assert "      FAILED tests/test_x.py::test_y - AssertionError: boom" in summary
