"""The program model and its rendering as Python source.

A program is a tree of statements run by the main task; ``Spawn`` statements define child
tasks whose bodies are statement lists too. It is rendered as the source of one
``async def program(trio, rec, clock, R)`` so that the same text runs on trio and on
vivace, and so that a disagreement can be handed over as a standalone script.

Rendering assigns every statement an id (preorder), which names what it records in the
trace and the values it sends; scope and nursery references in the model are plain
integers resolved modulo what exists, so that every drawn program is valid and Hypothesis
can shrink it freely.

Every statement records an event when it completes: ``rec(task, id, *values)``. Tasks
also record how they ended. Values are checkpoint-visible facts only: clock readings,
received items, ``cancelled_caught``, caught exceptions (normalised by ``rec``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finally", "Leaf", "Locked", "Nursery", "Program", "Scope", "Spawn", "Try"]

# Time values are dyadic so that sums of them are exact in binary floating point and
# both libraries compute bit-identical deadlines.
GUARD = 100.0  # the whole program runs under fail_after(GUARD) of virtual time

# Leaf operations: kind -> whether it needs to run inside a task function (task_status).
LEAF_KINDS = (
    "checkpoint",
    "shielded_checkpoint",
    "checkpoint_if_cancelled",
    "nursery_cancel",
    "sleep",
    "sleep_until",
    "sleep_forever",
    "jump",
    "stall",
    "wait_blocked",
    "now",
    "raise",
    "send",
    "send_nowait",
    "recv",
    "recv_nowait",
    "close_send",
    "close_send_sync",
    "close_recv",
    "close_recv_sync",
    "chan_stats",
    "clone_send",
    "clone_recv",
    "repark",
    "break_lot",
    "event_set",
    "event_wait",
    "cond_wait",
    "cond_notify",
    "park",
    "unpark",
    "lock_nowait",
    "lock_release",
    "sync_stats",
    "run_stats",
    "cancel",
    "set_deadline",
    "set_relative",
    "set_shield",
    "started",
)

SCOPE_KINDS = (
    "cs",
    "cs_deadline",
    "cs_relative",
    "move_on_after",
    "move_on_at",
    "fail_after",
    "fail_at",
)

# What a Try statement may catch; a tuple of these names is rendered as the except clause.
CATCHABLE = {
    "Cancelled": "trio.Cancelled",
    "TooSlowError": "trio.TooSlowError",
    "EndOfChannel": "trio.EndOfChannel",
    "BrokenResourceError": "trio.BrokenResourceError",
    "ClosedResourceError": "trio.ClosedResourceError",
    "WouldBlock": "trio.WouldBlock",
    "RuntimeError": "RuntimeError",
    "MyError": "MyError",
    "OtherError": "OtherError",
    "Exception": "Exception",
    "BaseException": "BaseException",
    "BaseExceptionGroup": "BaseExceptionGroup",
}
# except* refuses exception-group types.
STAR_CATCHABLE = tuple(k for k in CATCHABLE if k != "BaseExceptionGroup")


@dataclass(frozen=True)
class Leaf:
    kind: str
    res: int = 0  # resource index, or scope reference for cancel/set_deadline
    arg: float = 0.0  # a delay, a count, ...


@dataclass(frozen=True)
class Scope:
    kind: str
    delay: float
    shield: bool
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Nursery:
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Spawn:
    start: bool  # nursery.start (and wait for task_status.started) or start_soon
    nursery: int  # reference to a lexically enclosing nursery, innermost = 0
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Try:
    catch: tuple[str, ...]
    star: bool
    reraise: bool
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Finally:
    body: tuple[Stmt, ...]
    cleanup: tuple[Stmt, ...]
    shield_cleanup: bool


@dataclass(frozen=True)
class Locked:
    kind: str  # "lock" | "sem" | "limiter"
    body: tuple[Stmt, ...]


Stmt = Leaf | Scope | Nursery | Spawn | Try | Finally | Locked


@dataclass(frozen=True)
class Program:
    body: tuple[Stmt, ...]
    buffers: tuple[float, float] = (0, 1)  # the two memory channels' buffer sizes
    sem_value: int = 1
    seed: int = 0  # the scheduler seed used for both libraries
    instrument: bool = False  # record the tasks' scheduling hooks too


def _children(stmt: Stmt) -> tuple[Stmt, ...]:
    if isinstance(stmt, Leaf):
        return ()
    if isinstance(stmt, Finally):
        return stmt.body + stmt.cleanup
    return stmt.body


def scope_kinds(body: tuple[Stmt, ...]) -> list[str]:
    """The kinds of all scopes in the order the renderer numbers them (preorder)."""
    out: list[str] = []
    for stmt in body:
        if isinstance(stmt, Scope):
            out.append(stmt.kind)
        out.extend(scope_kinds(_children(stmt)))
    return out


def size(body: tuple[Stmt, ...]) -> int:
    return sum(1 + size(_children(stmt)) for stmt in body)


# Leaves whose immediate errors are caught and recorded (see _Renderer.leaf).
_SOFT = {
    "send_nowait",
    "recv_nowait",
    "lock_nowait",
    "lock_release",
    "set_relative",
    "clone_send",
    "clone_recv",
}
_SOFT_ERRORS = (
    "trio.WouldBlock, RuntimeError, trio.BrokenResourceError, trio.ClosedResourceError, "
    "trio.EndOfChannel"
)


class _Renderer:
    def __init__(self, program: Program) -> None:
        self.lines: list[str] = []
        self.next_id = 0
        self.next_scope = 0
        self.scope_kinds = scope_kinds(program.body)
        self.n_scopes = len(self.scope_kinds)

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def block(self, body: tuple[Stmt, ...], ind: int, task: str, nurseries: list[str]) -> None:
        if not body:
            self.emit(ind, "pass")
        for stmt in body:
            self.stmt(stmt, ind, task, nurseries)

    def stmt(self, s: Stmt, ind: int, task: str, nurseries: list[str]) -> None:
        i = self.new_id()
        t = repr(task)
        if isinstance(s, Leaf):
            self.leaf(s, i, ind, t, task != "main", nurseries)
        elif isinstance(s, Scope):
            self.scope(s, i, ind, task, nurseries)
        elif isinstance(s, Nursery):
            self.emit(ind, f"async with trio.open_nursery() as n{i}:")
            self.emit(ind + 1, f"rec({t}, {i}, 'open')")
            self.block(s.body, ind + 1, task, [f"n{i}", *nurseries])
            self.emit(ind, f"rec({t}, {i}, 'closed')")
        elif isinstance(s, Spawn):
            self.spawn(s, i, ind, task, nurseries)
        elif isinstance(s, Try):
            self.emit(ind, "try:")
            self.block(s.body, ind + 1, task, nurseries)
            names = ", ".join(CATCHABLE[c] for c in s.catch)
            self.emit(ind, f"except{'*' if s.star else ''} ({names},) as err{i}:")
            self.emit(ind + 1, f"rec({t}, {i}, 'caught', err{i})")
            if s.reraise:
                self.emit(ind + 1, "raise")
        elif isinstance(s, Finally):
            self.emit(ind, "try:")
            self.block(s.body, ind + 1, task, nurseries)
            self.emit(ind, "finally:")
            self.emit(ind + 1, f"rec({t}, {i}, 'finally')")
            if s.shield_cleanup:
                # A deadline of its own: a deadlock under a shield outlives the guard.
                self.emit(ind + 1, f"with trio.move_on_after({GUARD / 4}, shield=True):")
                ind += 1
            self.block(s.cleanup, ind + 1, task, nurseries)
        elif isinstance(s, Locked):
            name = {"lock": "l0", "sem": "s0", "limiter": "m0"}[s.kind]
            self.emit(ind, f"async with {name}:")
            self.emit(ind + 1, f"rec({t}, {i}, 'acquired')")
            self.block(s.body, ind + 1, task, nurseries)
            self.emit(ind, f"rec({t}, {i}, 'released')")
        else:  # pragma: no cover
            raise TypeError(s)

    def scope(self, s: Scope, i: int, ind: int, task: str, nurseries: list[str]) -> None:
        sid = self.next_scope
        self.next_scope += 1
        d, sh = s.delay, s.shield
        now = "trio.current_time()"
        make = {
            "cs": f"trio.CancelScope(shield={sh})",
            "cs_deadline": f"trio.CancelScope(deadline={now} + {d}, shield={sh})",
            "cs_relative": f"trio.CancelScope(relative_deadline={d}, shield={sh})",
            "move_on_after": f"trio.move_on_after({d}, shield={sh})",
            "move_on_at": f"trio.move_on_at({now} + {d}, shield={sh})",
            "fail_after": f"trio.fail_after({d}, shield={sh})",
            "fail_at": f"trio.fail_at({now} + {d}, shield={sh})",
        }[s.kind]
        t = repr(task)
        self.emit(ind, "try:")
        self.emit(ind + 1, f"with {make} as cs{sid}:")
        self.emit(ind + 2, f"R[{sid}] = cs{sid}")
        self.emit(ind + 2, f"rec({t}, {i}, 'entered', trio.current_effective_deadline())")
        self.block(s.body, ind + 2, task, nurseries)
        self.emit(ind, "finally:")
        self.emit(ind + 1, f"rec({t}, {i}, 'scope', *scope_state(R, {sid}))")

    def spawn(self, s: Spawn, i: int, ind: int, task: str, nurseries: list[str]) -> None:
        name = f"t{i}"
        self.emit(ind, f"async def {name}(task_status=trio.TASK_STATUS_IGNORED):")
        self.emit(ind + 1, f"rec({name!r}, 'begin')")
        self.emit(ind + 1, "try:")
        self.block(s.body, ind + 2, name, nurseries)
        self.emit(ind + 1, "except BaseException as exc:")
        self.emit(ind + 2, f"rec({name!r}, 'exit', exc)")
        self.emit(ind + 2, "raise")
        self.emit(ind + 1, f"rec({name!r}, 'end')")
        nursery = nurseries[s.nursery % len(nurseries)]
        t = repr(task)
        if s.start:
            self.emit(ind, f"rec({t}, {i}, 'started', await {nursery}.start({name}))")
        else:
            self.emit(ind, f"{nursery}.start_soon({name})")
            self.emit(ind, f"rec({t}, {i}, 'spawned')")

    def leaf(self, s: Leaf, i: int, ind: int, t: str, in_task: bool, nurseries: list[str]) -> None:
        k, a = s.kind, s.arg
        ch = s.res % 2
        # Endpoints: S0/R0 and S1/R1 are lists of a channel's clones; res picks one.
        snd = f"S{ch}[{s.res // 2} % len(S{ch})]"
        rcv = f"R{ch}[{s.res // 2} % len(R{ch})]"
        lot = f"p{s.res % 2}"
        sid = s.res % self.n_scopes if self.n_scopes else None
        now = "trio.current_time()"
        code: list[str]
        if k == "checkpoint":
            code = ["await trio.lowlevel.checkpoint()", f"rec({t}, {i})"]
        elif k == "shielded_checkpoint":
            code = ["await trio.lowlevel.cancel_shielded_checkpoint()", f"rec({t}, {i})"]
        elif k == "checkpoint_if_cancelled":
            code = ["await trio.lowlevel.checkpoint_if_cancelled()", f"rec({t}, {i})"]
        elif k == "nursery_cancel":
            nursery = nurseries[s.res % len(nurseries)]
            code = [f"{nursery}.cancel_scope.cancel()", f"rec({t}, {i})"]
        elif k == "sleep":
            code = [f"await trio.sleep({a})", f"rec({t}, {i}, {now})"]
        elif k == "sleep_until":
            code = [f"await trio.sleep_until({now} + {a})", f"rec({t}, {i}, {now})"]
        elif k == "sleep_forever":
            code = ["await trio.sleep_forever()"]
        elif k == "jump":
            code = [f"clock.jump({a})", f"rec({t}, {i}, {now})"]
        elif k == "stall":
            code = [f"stall(clock, {a})", f"rec({t}, {i}, {now})"]
        elif k == "wait_blocked":
            code = ["await trio.testing.wait_all_tasks_blocked()", f"rec({t}, {i}, {now})"]
        elif k == "now":
            code = [f"rec({t}, {i}, {now}, trio.current_effective_deadline())"]
        elif k == "raise":
            exc = ("MyError", "OtherError", "MyBaseError")[s.res % 3]
            code = [f"raise {exc}({i})"]
        elif k == "send":
            code = [f"await {snd}.send({i})", f"rec({t}, {i})"]
        elif k == "send_nowait":
            code = [f"{snd}.send_nowait({i})", f"rec({t}, {i})"]
        elif k == "recv":
            code = [f"rec({t}, {i}, await {rcv}.receive())"]
        elif k == "recv_nowait":
            code = [f"rec({t}, {i}, {rcv}.receive_nowait())"]
        elif k in ("close_send", "close_recv"):
            code = [f"await {snd if k == 'close_send' else rcv}.aclose()", f"rec({t}, {i})"]
        elif k in ("close_send_sync", "close_recv_sync"):
            code = [f"{snd if k == 'close_send_sync' else rcv}.close()", f"rec({t}, {i})"]
        elif k == "clone_send":
            code = [f"S{ch}.append({snd}.clone())", f"rec({t}, {i})"]
        elif k == "clone_recv":
            code = [f"R{ch}.append({rcv}.clone())", f"rec({t}, {i})"]
        elif k == "chan_stats":
            code = [f"rec({t}, {i}, stats({snd}.statistics()), stats({rcv}.statistics()))"]
        elif k == "event_set":
            code = [f"e{ch}.set()", f"rec({t}, {i})"]
        elif k == "event_wait":
            code = [f"await e{ch}.wait()", f"rec({t}, {i})"]
        elif k == "cond_wait":
            code = ["async with k0:", "    await k0.wait()", f"rec({t}, {i})"]
        elif k == "cond_notify":
            call = "k0.notify_all()" if int(a) == 0 else f"k0.notify({int(a)})"
            code = ["async with k0:", f"    {call}", f"rec({t}, {i})"]
        elif k == "park":
            code = [f"await {lot}.park()", f"rec({t}, {i})"]
        elif k == "unpark":
            call = f"{lot}.unpark_all()" if int(a) == 0 else f"{lot}.unpark(count={int(a)})"
            code = [f"rec({t}, {i}, len({call}))"]
        elif k == "repark":
            other = f"p{1 - s.res % 2}"
            call = (
                f"{lot}.repark_all({other})"
                if int(a) == 0
                else f"{lot}.repark({other}, count={int(a)})"
            )
            code = [call, f"rec({t}, {i})"]
        elif k == "break_lot":
            code = [f"{lot}.break_lot()", f"rec({t}, {i}, len({lot}.broken_by))"]
        elif k == "lock_nowait":
            code = [f"{('l0', 's0', 'm0')[s.res % 3]}.acquire_nowait()", f"rec({t}, {i})"]
        elif k == "lock_release":
            code = [f"{('l0', 's0', 'm0')[s.res % 3]}.release()", f"rec({t}, {i})"]
        elif k == "run_stats":
            code = [f"rec({t}, {i}, *run_stats(trio))"]
        elif k == "sync_stats":
            code = [f"rec({t}, {i}, *sync_stats(l0, s0, e0, e1, k0, p0, p1, m0))"]
        elif k == "cancel" and sid is not None:
            code = [f"if {sid} in R:", f"    R[{sid}].cancel()", f"rec({t}, {i}, {sid} in R)"]
        elif k == "set_deadline" and sid is not None:
            code = [
                f"if {sid} in R:",
                f"    R[{sid}].deadline = {now} + {a}",
                f"rec({t}, {i}, {sid} in R)",
            ]
        elif k == "set_relative" and sid is not None:
            code = [
                f"if {sid} in R:",
                f"    R[{sid}].relative_deadline = {a}",
                f"rec({t}, {i}, {sid} in R)",
            ]
        elif k == "set_shield" and sid is not None and self.scope_kinds[sid] != "cs":
            # Only scopes born with a deadline: a deadlock under a shield must still end.
            code = [
                f"if {sid} in R:",
                f"    R[{sid}].shield = {bool(s.arg)}",
                f"rec({t}, {i}, {sid} in R)",
            ]
        elif k == "started" and in_task:
            code = [f"task_status.started({i})", f"rec({t}, {i})"]
        else:
            code = [f"rec({t}, {i}, 'noop')"]
        if k in _SOFT:
            # Misuse that raises at once (WouldBlock, RuntimeError, ...) is recorded and
            # the program goes on, so that such leaves do not cut most programs short.
            self.emit(ind, "try:")
            for line in code:
                self.emit(ind + 1, line)
            self.emit(ind, f"except ({_SOFT_ERRORS}) as x{i}:")
            self.emit(ind + 1, f"rec({t}, {i}, 'raised', x{i})")
            return
        for line in code:
            self.emit(ind, line)


def render(program: Program) -> str:
    """The program as the source of ``async def program(trio, rec, clock, R)``."""
    r = _Renderer(program)
    r.emit(0, "async def program(trio, rec, clock, R):")
    b0, b1 = program.buffers
    r.emit(1, f"S0, R0 = map(lambda c: [c], trio.open_memory_channel({b0}))")
    r.emit(1, f"S1, R1 = map(lambda c: [c], trio.open_memory_channel({b1}))")
    r.emit(1, "l0 = trio.Lock()")
    r.emit(1, f"s0 = trio.Semaphore({program.sem_value})")
    r.emit(1, "e0, e1 = trio.Event(), trio.Event()")
    r.emit(1, "k0 = trio.Condition()")
    r.emit(1, "p0, p1 = trio.lowlevel.ParkingLot(), trio.lowlevel.ParkingLot()")
    r.emit(1, "m0 = trio.CapacityLimiter(1)")
    r.emit(1, "try:")
    r.emit(2, f"with trio.fail_after({GUARD}):")
    r.emit(3, "rec('main', 'begin')")
    r.emit(3, "async with trio.open_nursery() as n0:")
    r.block(program.body, 4, "main", ["n0"])
    r.emit(1, "except BaseException as exc:")
    r.emit(2, "rec('main', 'exit', exc)")
    r.emit(2, "raise")
    r.emit(1, "rec('main', 'end')")
    r.emit(1, "return 'ok'")
    return "\n".join(r.lines) + "\n"
