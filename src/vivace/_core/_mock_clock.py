"""``testing.MockClock``: a clock tests can stop, speed up, jump, or let jump by itself."""

from __future__ import annotations

import time
from math import inf

from .._abc import Clock
from .._util import final
from ._run_context import GLOBAL_RUN_CONTEXT


@final
class MockClock(Clock):
    """A controllable clock for tests.

    ``rate``: virtual seconds per real second (default 0: time stands still except for
    ``jump`` and autojumps). ``autojump_threshold``: once every task has been blocked
    this many *real* seconds, the clock jumps straight to the next deadline (default
    inf: never). With ``autojump_threshold=0``, sleep-heavy tests run instantly.
    ``wait_all_tasks_blocked`` waiters take priority over autojumping.
    """

    __slots__ = ("_autojump_threshold", "_rate", "_real_base", "_real_clock", "_virtual_base")

    def __init__(self, rate: float = 0.0, autojump_threshold: float = inf) -> None:
        # Virtual time was _virtual_base when the real clock read _real_base; since then
        # it has advanced at _rate virtual seconds per real second.
        self._real_base = 0.0
        self._virtual_base = 0.0
        self._rate = 0.0
        self._real_clock = time.perf_counter
        self._autojump_threshold = inf
        self.rate = rate
        self.autojump_threshold = autojump_threshold

    def __repr__(self) -> str:
        return f"<MockClock, time={self.current_time():.7f}, rate={self._rate} @ {id(self):#x}>"

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, new_rate: float) -> None:
        if new_rate < 0:
            raise ValueError("rate must be >= 0")
        real = self._real_clock()
        self._virtual_base = self._real_to_virtual(real)
        self._real_base = real
        self._rate = float(new_rate)

    @property
    def autojump_threshold(self) -> float:
        return self._autojump_threshold

    @autojump_threshold.setter
    def autojump_threshold(self, new_threshold: float) -> None:
        self._autojump_threshold = float(new_threshold)
        self._resync_autojump_threshold()

    def _resync_autojump_threshold(self) -> None:
        runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        if runner is None:
            return
        if runner.is_guest:
            runner.force_guest_tick_asap()
        if runner.clock is self:
            runner.clock_autojump_threshold = self._autojump_threshold

    def _autojump(self) -> None:
        # Called by the run loop once everything has been idle for the threshold.
        runner = GLOBAL_RUN_CONTEXT.runner
        jump = runner.deadlines.peek_deadline() - self.current_time()
        if 0 < jump < inf:
            self.jump(jump)

    def _real_to_virtual(self, real: float) -> float:
        return self._virtual_base + self._rate * (real - self._real_base)

    def start_clock(self) -> None:
        self._resync_autojump_threshold()

    def current_time(self) -> float:
        return self._real_to_virtual(self._real_clock())

    def deadline_to_sleep_time(self, deadline: float) -> float:
        virtual_timeout = deadline - self.current_time()
        if virtual_timeout <= 0:
            return 0
        if self._rate > 0:
            return virtual_timeout / self._rate
        return 999999999

    def jump(self, seconds: float) -> None:
        """Move the clock forward by *seconds* (ValueError if negative)."""
        if seconds < 0:
            raise ValueError("time can't go backwards")
        self._virtual_base += seconds
