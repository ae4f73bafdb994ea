"""``RunVar``: a variable whose value is shared by every task of one ``run`` call."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ._run_context import GLOBAL_RUN_CONTEXT
from ._util import NoPublicConstructor, final

T = TypeVar("T")


@final
class _NoValue:
    pass


def _locals() -> dict[Any, Any]:
    try:
        return GLOBAL_RUN_CONTEXT.runner._locals
    except AttributeError:
        raise RuntimeError("Cannot be used outside of a run context") from None


@final
class RunVarToken(Generic[T], metaclass=NoPublicConstructor):
    """Returned by ``RunVar.set``; pass it to ``RunVar.reset`` to undo that set."""

    __slots__ = ("_var", "previous_value", "redeemed")

    def __init__(self, var: RunVar[T], previous_value: Any = _NoValue) -> None:
        self._var = var
        self.previous_value: Any = previous_value
        self.redeemed: bool = False


@final
class RunVar(Generic[T]):
    """Like a ``contextvars.ContextVar``, but one value per ``run`` call, shared by all
    of its tasks."""

    __slots__ = ("_default", "_name")

    def __init__(self, name: str, default: Any = _NoValue) -> None:
        self._name = name
        self._default = default

    def get(self, default: Any = _NoValue) -> T:
        """Return the value for the current run, else *default*, else the variable's
        default; LookupError if there is none."""
        try:
            return _locals()[self]
        except KeyError:
            if default is not _NoValue:
                return default
            if self._default is not _NoValue:
                return self._default
            raise LookupError(self) from None

    def set(self, value: T) -> RunVarToken[T]:
        """Set the value for the current run; return a token for ``reset``."""
        values = _locals()
        try:
            old = self.get()
        except LookupError:
            token: RunVarToken[T] = RunVarToken._create(self)  # type: ignore[assignment]
        else:
            token = RunVarToken._create(self, old)  # type: ignore[assignment]
        values[self] = value
        return token

    def reset(self, token: RunVarToken[T]) -> None:
        """Restore the value the variable had before the ``set`` that made *token*."""
        if token is None:
            raise TypeError("token must not be none")
        if token.redeemed:
            raise ValueError("token has already been used")
        if token._var is not self:
            raise ValueError("token is not for us")
        values = _locals()
        if token.previous_value is _NoValue:
            values.pop(self, None)
        else:
            values[self] = token.previous_value
        token.redeemed = True

    def __repr__(self) -> str:
        return f"<RunVar name={self._name!r}>"
