"""The set of installed instruments, indexed by hook.

The kernel never looks at this object on the hot path: it reads three booleans
(``_instr_before_step``, ``_instr_after_step``, ``_instr_scheduled``) that the runner
refreshes whenever the set changes, so a run with no instruments pays one flag test.
"""

from __future__ import annotations

import logging
import types
from typing import TYPE_CHECKING, Any

from ._abc import Instrument

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

INSTRUMENT_LOGGER = logging.getLogger("trio.abc.Instrument")


class Instruments:
    """hook name -> instruments (insertion-ordered) that override that hook."""

    __slots__ = ("_by_hook", "_on_change")

    def __init__(
        self, incoming: Sequence[Instrument], on_change: Callable[[], None] | None = None
    ) -> None:
        self._by_hook: dict[str, dict[Any, None]] = {"_all": {}}
        self._on_change = on_change
        for instrument in incoming:
            self.add_instrument(instrument)

    def __contains__(self, hook: str) -> bool:
        return hook in self._by_hook

    def add_instrument(self, instrument: Instrument) -> None:
        """Install *instrument* (no-op if it is already installed)."""
        if instrument in self._by_hook["_all"]:
            return
        self._by_hook["_all"][instrument] = None
        try:
            for name in dir(instrument):
                if name.startswith("_"):
                    continue
                prototype = getattr(Instrument, name, None)
                if prototype is None:
                    continue
                impl = getattr(instrument, name)
                # Hooks left at the base class's no-op cost nothing.
                if isinstance(impl, types.MethodType) and impl.__func__ is prototype:
                    continue
                self._by_hook.setdefault(name, {})[instrument] = None
        except BaseException:
            self.remove_instrument(instrument)
            raise
        finally:
            if self._on_change is not None:
                self._on_change()

    def remove_instrument(self, instrument: Instrument) -> None:
        """Uninstall *instrument*; KeyError if it is not installed (or was disabled
        after raising)."""
        self._by_hook["_all"].pop(instrument)
        for hook, instruments in list(self._by_hook.items()):
            if instrument in instruments:
                del instruments[instrument]
                if not instruments:
                    del self._by_hook[hook]
        if self._on_change is not None:
            self._on_change()

    def call(self, hook: str, *args: object) -> None:
        """Call ``hook(*args)`` on every instrument that has it; an instrument that
        raises is logged and removed."""
        instruments = self._by_hook.get(hook)
        if not instruments:
            return
        for instrument in list(instruments):
            try:
                getattr(instrument, hook)(*args)
            except BaseException:
                self.remove_instrument(instrument)
                INSTRUMENT_LOGGER.exception(
                    "Exception raised when calling %r on instrument %r. "
                    "Instrument has been disabled.",
                    hook,
                    instrument,
                )
