"""Differential fuzzing: random programs run on real trio 0.35.0 and on vivace (the engine
this pytest process loaded) must give the same outcome and the same trace.

The programs (tests/differential/) mix nurseries, start_soon/start, checkpoints, sleeps,
nested cancel scopes with absolute and relative deadlines, shields, cancel(), timeouts,
memory channels, Lock/Semaphore/CapacityLimiter/Event/Condition, ParkingLot, raised
exceptions, clock jumps and loop stalls, all on an autojump MockClock with deterministic
scheduling seeded identically in both libraries.

The CI run is small and derandomized (reproducible). The long run:
``VIVACE_FUZZ_EXAMPLES=20000`` (random examples, no per-test timeout), see scripts/fuzz;
with ``VIVACE_FUZZ_COLLECT=path`` every disagreement is appended to that file as a
standalone repro instead of stopping at the first one.
"""

from __future__ import annotations

import json
import os

import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import HealthCheck, given, settings

import vivace
import vivace.lowlevel
import vivace.testing
from differential.compare import difference, harness_error, kind, report, standalone
from differential.program import render
from differential.runner import compile_program, deterministic, run_program
from differential.strategies import programs

CI_EXAMPLES = 400
LONG_EXAMPLES = int(os.environ.get("VIVACE_FUZZ_EXAMPLES", "0"))
COLLECT = os.environ.get("VIVACE_FUZZ_COLLECT")

_settings = settings(
    max_examples=LONG_EXAMPLES or CI_EXAMPLES,
    deadline=None,
    derandomize=not LONG_EXAMPLES,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _record_disagreement(program: object, why: str, repro: str) -> None:
    assert COLLECT is not None
    with open(COLLECT, "a") as f:
        row = {"kind": kind(why), "why": why, "program": repr(program), "repro": repro}
        f.write(json.dumps(row) + "\n")


# The CI run takes ~10 s of CPU; the generous limit is for a loaded machine and for
# Hypothesis shrinking a failure (each run has its own 20 s hang guard).
@pytest.mark.timeout(0 if LONG_EXAMPLES else 240)
@_settings
@given(program=programs())
def test_vivace_agrees_with_trio(program) -> None:  # type: ignore[no-untyped-def]
    source = render(program)
    fn = compile_program(source)
    with deterministic(trio, vivace):
        expected = run_program(trio, fn, program.seed, program.instrument)
        actual = run_program(vivace, fn, program.seed, program.instrument)
    broken = harness_error(expected)
    assert broken is None, f"the generated program is broken ({broken} on trio):\n{source}"
    why = difference(expected, actual)
    if why is None:
        return
    if COLLECT:
        _record_disagreement(program, why, standalone(program))
        return
    pytest.fail(report(program, expected, actual, why), pytrace=False)


def test_the_oracle_sees_scheduling() -> None:
    # The comparison is only as good as its traces: the same program under another
    # scheduler seed must be told apart, or matching traces would prove nothing.
    from differential.program import Leaf, Program, Spawn

    task = (Leaf("checkpoint"), Leaf("checkpoint"))
    body = tuple(Spawn(False, 0, task) for _ in range(4))
    fn = compile_program(render(Program(body)))
    with deterministic(trio):
        orders = {tuple(run_program(trio, fn, seed).events) for seed in range(8)}
    assert len(orders) > 1


def test_outcomes_and_traces_are_compared() -> None:
    from differential.runner import Result

    base = Result(("value", "ok"), [("main", "begin"), ("t1", 2), ("main", "end")])
    assert difference(base, base) is None
    assert difference(base, Result(("error", ("TrioInternalError",)), base.events))
    woken = [("instrument", "scheduled", "t1"), ("instrument", "scheduled", "t2")]
    assert difference(Result(base.outcome, woken), Result(base.outcome, woken[::-1])) is None
    swapped = Result(base.outcome, [("t1", 2), ("main", "begin"), ("main", "end")])
    why = difference(base, swapped)
    assert why is not None and why.startswith("global order")
    other = Result(base.outcome, [("main", "begin"), ("t1", 3), ("main", "end")])
    why = difference(base, other)
    assert why is not None and why.startswith("trace of task 't1'")
