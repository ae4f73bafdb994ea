"""``NO_CHILD_NURSERIES``: what ``Task._child_nurseries`` holds until the task opens a
nursery (shared by both kernels)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn


class _NoChildNurseries:
    # One shared, immutable, empty stand-in for the list: spawning allocates nothing
    # for it, and it still reads like the empty list trio's Task keeps there (equal to
    # [] and (), falsy, iterable). The first nursery a task opens replaces it with a list.
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return other is self or (isinstance(other, (list, tuple)) and not other)

    __hash__ = None  # type: ignore[assignment]  # like a list

    def __bool__(self) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def pop(self) -> NoReturn:
        raise IndexError("pop from empty list")

    def __repr__(self) -> str:
        return "[]"


NO_CHILD_NURSERIES: Any = _NoChildNurseries()
