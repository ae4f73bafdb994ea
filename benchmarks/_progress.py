"""Progress reporting for ``run.py``: where the run is, how long it took, what is left.

Design notes: a benchmark run is a few hundred short worker processes, so the user
needs a sign of life per step and an estimate of the end. On a terminal one status
line is rewritten in place (with a bar) and only lasting messages scroll; into a pipe
or a file every step is its own line, so logs read the same as the terminal. The
clock is injectable so that the estimate can be tested without sleeping.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 20


def fmt_duration(seconds: float) -> str:
    """0:42, 12:05, 1:02:03: minutes and seconds, hours only when needed."""
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    fraction = min(1.0, max(0.0, fraction))
    full = int(round(fraction * width))
    return "█" * full + "░" * (width - full)


class Progress:
    """Counts *total* steps; ``step(label)`` announces the next one, ``log(msg)`` prints
    a line that stays. The estimate of what is left is the mean duration of the steps
    finished so far times the steps still to run (steps differ, so it is rough until a
    few workloads have run; the label says "~")."""

    def __init__(self, total: int, stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(0, total)
        self.stream = stream if stream is not None else sys.stdout
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.clock = clock
        self.started = clock()
        self.done = 0
        self._step_started: float | None = None
        self._step_time = 0.0  # summed duration of the finished steps
        self._status = ""  # the TTY status line currently shown, if any

    # ---------------------------------------------------------------- estimates

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float | None:
        """Estimated seconds still to run, or None before any step has finished."""
        if self.done == 0:
            return None
        return self._step_time / self.done * max(0, self.total - self.done)

    def timing(self) -> str:
        left = self.left()
        when = "estimating what is left" if left is None else f"~{fmt_duration(left)} left"
        return f"{fmt_duration(self.elapsed())} elapsed, {when}"

    # ---------------------------------------------------------------- steps

    def step(self, label: str) -> None:
        """Finish the current step (if any) and announce the next one."""
        self._finish_step()
        self._step_started = self.clock()
        counter = f"[{self.done + 1}/{self.total}]"
        text = f"{label} … {self.timing()}"
        if self.tty:
            fraction = self.done / self.total if self.total else 1.0
            self._show(f"{counter} {bar(fraction)} {text}")
        else:
            self._write(f"{counter} {text}\n")

    def skip(self, steps: int) -> None:
        """Steps that will not run after all (a cell that failed is not run again)."""
        self.total = max(self.done, self.total - steps)

    def close(self) -> None:
        """Finish the last step and clear the status line."""
        self._finish_step()
        self._clear()

    def log(self, msg: str) -> None:
        """A line that stays (above the status line on a terminal)."""
        status = self._status
        self._clear()
        self._write(msg + "\n")
        if status:
            self._show(status)

    # ---------------------------------------------------------------- output

    def _finish_step(self) -> None:
        if self._step_started is None:
            return
        self._step_time += self.clock() - self._step_started
        self._step_started = None
        self.done += 1

    def _show(self, line: str) -> None:
        # A line wider than the terminal wraps, and "\r" would then redraw only its
        # last row: cut it to fit.
        width = shutil.get_terminal_size((100, 24)).columns - 1
        if len(line) > width > 0:
            line = line[: width - 1] + "…"
        self._write("\r\x1b[K" + line)
        self._status = line

    def _clear(self) -> None:
        if self._status:
            self._write("\r\x1b[K")
            self._status = ""

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
