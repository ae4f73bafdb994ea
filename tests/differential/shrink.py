"""Minimise a disagreeing program without Hypothesis (for disagreements collected by a
long run, which are not shrunk): greedy passes that drop a statement, replace a compound
statement by its body, or simplify a leaf, kept whenever the run still disagrees.

    .venv/bin/python tests/differential/shrink.py build/fuzz/compiled.jsonl [index|all]

prints the smallest program found and writes its standalone repro next to the input
(``<input>-min-<index>.py``); with ``all``, shrinks every row and prints each distinct
minimal program once, with how many rows shrank to it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

if __name__ == "__main__":  # run as a script: make the package importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from differential import program as model
from differential.compare import difference, standalone
from differential.program import Finally, Leaf, Program, Stmt, render, size
from differential.runner import compile_program, deterministic, run_program

Body = tuple[Stmt, ...]


def _variants(body: Body) -> Iterator[Body]:
    """Smaller or simpler versions of a body, roughly biggest cut first."""
    for i, stmt in enumerate(body):
        yield body[:i] + body[i + 1 :]
        if not isinstance(stmt, Leaf):
            inner = stmt.body + (stmt.cleanup if isinstance(stmt, Finally) else ())
            yield body[:i] + inner + body[i + 1 :]
    for i, stmt in enumerate(body):
        if isinstance(stmt, Leaf):
            if stmt.kind != "checkpoint":
                yield body[:i] + (Leaf("checkpoint"),) + body[i + 1 :]
            if stmt.res:
                yield body[:i] + (dataclasses.replace(stmt, res=0),) + body[i + 1 :]
            continue
        fields = ["body", "cleanup"] if isinstance(stmt, Finally) else ["body"]
        for name in fields:
            for smaller in _variants(getattr(stmt, name)):
                yield body[:i] + (dataclasses.replace(stmt, **{name: smaller}),) + body[i + 1 :]


def disagrees(program: Program) -> bool:
    import trio
    import trio.testing

    import vivace
    import vivace.testing

    try:
        fn = compile_program(render(program))
    except SyntaxError:
        return False
    with deterministic(trio, vivace):
        a = run_program(trio, fn, program.seed, program.instrument)
        b = run_program(vivace, fn, program.seed, program.instrument)
    return difference(a, b) is not None


def shrink(program: Program, test: Callable[[Program], bool] = disagrees) -> Program:
    assert test(program), "the program does not disagree"
    changed = True
    while changed:
        changed = False
        for body in _variants(program.body):
            candidate = dataclasses.replace(program, body=body)
            if test(candidate):
                program, changed = candidate, True
                break
        if not changed and program.instrument:
            candidate = dataclasses.replace(program, instrument=False)
            if test(candidate):
                program, changed = candidate, True
    return program


def load(line: str) -> Program:
    names: dict[str, Any] = {n: getattr(model, n) for n in model.__all__}
    names["inf"] = math.inf
    return eval(json.loads(line)["program"], names)


def _body_text(program: Program) -> str:
    # The rendered body without the fixed preamble: what tells two minimal programs apart.
    text = render(program)
    return text[text.index("as n0:") :]


def main(argv: list[str]) -> None:
    path = argv[1]
    which = argv[2] if len(argv) > 2 else "0"
    with open(path) as f:
        lines = f.readlines()
    indices = range(len(lines)) if which == "all" else [int(which)]
    seen: dict[str, list[int]] = {}
    for index in indices:
        small = shrink(load(lines[index]))
        key = _body_text(small)
        if key in seen:
            seen[key].append(index)
            continue
        seen[key] = [index]
        out = f"{path}-min-{index}.py"
        with open(out, "w") as f:
            f.write(standalone(small))
        print(
            f"--- row {index}: {size(small.body)} statements, seed {small.seed}, "
            f"instrument {small.instrument}; standalone repro: {out}"
        )
        print(key)
    print("distinct minimal programs (rows):", list(seen.values()))


if __name__ == "__main__":
    main(sys.argv)
