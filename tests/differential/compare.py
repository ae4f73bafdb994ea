"""Deciding whether two runs agree, and writing a disagreement down as a standalone repro.

What is compared, strictest last:
1. the outcome: the return value, or the normalised exception tree (group types and
   nesting, leaf types, the program's own exceptions with their arguments);
2. each task's own trace: every statement's completion with the values it observed
   (clock readings, effective deadlines, items received, scope states, caught
   exceptions, statistics);
3. the global order of all events. Both libraries run the same system tasks in the same
   spawn order, so with deterministic scheduling and the same seed their batches are
   shuffled identically, and this order matches too; a difference that shows only here
   is still reported, as its own kind.
"""

from __future__ import annotations

import inspect
from typing import Any

from . import runner
from .program import Program, render
from .runner import Result


def canonical(result: Result) -> Result:
    """The result with each run of consecutive ``task_scheduled`` instrument events
    sorted: one operation that wakes several tasks (a cancel, ``unpark_all``) reschedules
    them in an order trio leaves to set iteration, so only the set is comparable. (The
    order they then run in is fixed by the deterministic batch sort.)"""
    events: list[tuple[Any, ...]] = []
    run: list[tuple[Any, ...]] = []
    for event in [*result.events, ("end",)]:
        if event[:2] == ("instrument", "scheduled"):
            run.append(event)
            continue
        events.extend(sorted(run))
        run = []
        events.append(event)
    return Result(result.outcome, events[:-1])


def difference(trio_result: Result, vivace_result: Result) -> str | None:
    """None if the runs agree, else a short description of the first difference."""
    a, b = canonical(trio_result), canonical(vivace_result)
    if a.outcome != b.outcome:
        return f"outcome: trio {a.outcome!r}, vivace {b.outcome!r}"
    ta, tb = a.per_task(), b.per_task()
    for task in sorted(set(ta) | set(tb)):
        ea, eb = ta.get(task, []), tb.get(task, [])
        if ea != eb:
            k = next((i for i, (x, y) in enumerate(zip(ea, eb)) if x != y), min(len(ea), len(eb)))
            return (
                f"trace of task {task!r} at event {k}: "
                f"trio {ea[k : k + 3]!r}, vivace {eb[k : k + 3]!r}"
            )
    if a.events != b.events:
        k = next(i for i, (x, y) in enumerate(zip(a.events, b.events)) if x != y)
        return f"global order at event {k}: trio {a.events[k : k + 3]!r}, vivace {b.events[k : k + 3]!r}"
    return None


# Exceptions no generated program may raise on trio: they would mean the renderer wrote
# a broken program, which both libraries would then "agree" on.
_HARNESS_ERRORS = {
    "NameError",
    "UnboundLocalError",
    "SyntaxError",
    "AttributeError",
    "TypeError",
    "KeyError",
    "IndexError",
}


def harness_error(result: Result) -> str | None:
    """The name of a harness-bug exception anywhere in a (trio) result, if any."""

    def walk(value: Any) -> str | None:
        if isinstance(value, tuple):
            if value and value[0] in _HARNESS_ERRORS:
                return str(value[0])
            for item in value:
                found = walk(item)
                if found:
                    return found
        return None

    return walk(result.outcome) or walk(tuple(result.events))


def kind(description: str) -> str:
    return description.split(":", 1)[0].split(" at ")[0]


def report(program: Program, trio_result: Result, vivace_result: Result, why: str) -> str:
    lines = [
        f"vivace disagrees with trio 0.35.0 ({why})",
        f"scheduler seed {program.seed}, instrument {program.instrument}; the program:",
        "",
        render(program),
        f"trio:   {trio_result.outcome!r}",
        f"vivace: {vivace_result.outcome!r}",
        "trio events:",
        *(f"    {e!r}" for e in trio_result.events),
        "vivace events:",
        *(f"    {e!r}" for e in vivace_result.events),
    ]
    return "\n".join(lines)


_MAIN = """

if __name__ == "__main__":
    import trio
    import trio.testing

    import vivace
    import vivace.testing

    fn = compile_program(PROGRAM)
    with deterministic(trio, vivace):
        results = {lib.__name__: run_program(lib, fn, SEED, INSTRUMENT) for lib in (trio, vivace)}
    for name, result in results.items():
        print(f"--- {name}: {result.outcome!r}")
        for event in result.events:
            print("   ", event)
"""


def standalone(program: Program) -> str:
    """A self-contained script that runs the program on trio and on vivace."""
    source: Any = inspect.getsource(runner)
    return (
        f"{source}\n\nSEED = {program.seed}\nINSTRUMENT = {program.instrument}\n"
        f"PROGRAM = '''\n{render(program)}'''\n{_MAIN}"
    )
