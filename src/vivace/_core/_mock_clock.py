"""``testing.MockClock``: a clock tests can stop, speed up, jump, or let jump by itself."""

from __future__ import annotations

import time
from math import inf

from ._abc import Clock
from ._run_context import GLOBAL_RUN_CONTEXT
from ._util import final


@final
class MockClock(Clock):
    """A controllable clock for tests.

    ``rate``: virtual seconds per real second (default 0: time stands still except for
    ``jump`` and autojumps). ``autojump_threshold``: once every task has been blocked
    this many *real* seconds, the clock jumps straight to the next deadline (default
    inf: never). With ``autojump_threshold=0``, sleep-heavy tests run instantly.
    ``wait_all_tasks_blocked`` waiters take priority over autojumping.
    """

    __slots__ = ("_anchor_real", "_anchor_virtual", "_autojump_threshold", "_rate", "_real_clock")

    def __init__(self, rate: float = 0.0, autojump_threshold: float = inf) -> None:
        # Time is piecewise linear: since the real clock read _anchor_real, virtual time
        # has run at _rate from _anchor_virtual. Changing the rate moves the anchor.
        self._real_clock = time.perf_counter
        self._anchor_real = 0.0
        self._anchor_virtual = 0.0
        self._rate = 0.0
        self._autojump_threshold = inf
        self.rate = rate
        self.autojump_threshold = autojump_threshold

    def __repr__(self) -> str:
        now = self.current_time()
        return f"<MockClock, time={now:.7f}, rate={self._rate} @ {id(self):#x}>"

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, new_rate: float) -> None:
        rate = float(new_rate)
        if not rate >= 0:
            raise ValueError("rate must be >= 0")
        real_now = self._real_clock()
        self._anchor_virtual, self._anchor_real = self._virtual_at(real_now), real_now
        self._rate = rate

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

    def _virtual_at(self, real: float) -> float:
        return self._anchor_virtual + (real - self._anchor_real) * self._rate

    def start_clock(self) -> None:
        self._resync_autojump_threshold()

    def current_time(self) -> float:
        return self._virtual_at(self._real_clock())

    def deadline_to_sleep_time(self, deadline: float) -> float:
        remaining = deadline - self.current_time()
        if remaining <= 0:
            return 0
        # A stopped clock never reaches the deadline by itself: "practically forever".
        return remaining / self._rate if self._rate > 0 else 999999999

    def jump(self, seconds: float) -> None:
        """Move the clock forward by *seconds* (ValueError if negative)."""
        if seconds < 0:
            raise ValueError("time can't go backwards")
        self._anchor_virtual += seconds
