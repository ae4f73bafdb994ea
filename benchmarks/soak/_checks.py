"""The soak driver's verdicts: the client/server cross-check, fd listings, RSS growth.

Design notes: the client already proves each echoed stream is a prefix of what it sent;
the cross-check adds what only the two views together show: that a connection the
client counted as complete was also an EOF-ended handler that echoed exactly as many
bytes, that every server-side cancellation the client saw was a caught cancellation on
the server, and that the server saw no connection the client never made. Stdlib only.
"""

from __future__ import annotations

import os
from typing import Any

import _protocol as P

MAX_ERRORS_KEPT = 20


def fd_targets(pid: int) -> dict[str, str]:
    """fd number -> what it points at, for naming leaked descriptors."""
    out = {}
    base = f"/proc/{pid}/fd"
    for fd in os.listdir(base):
        try:
            out[fd] = os.readlink(f"{base}/{fd}")
        except OSError:  # closed while we looked
            pass
    return out


def cross_check(client: dict, client_records: list, server: dict) -> dict[str, Any]:
    errors: list[str] = []
    mismatches = 0

    def bad(message: str) -> None:
        nonlocal mismatches
        mismatches += 1
        if len(errors) < MAX_ERRORS_KEPT:
            errors.append(message)

    records = server.get("records", {})
    seen: set[str] = set()
    missing_on_server = 0
    for cid, mode, sent, received, how in client_records:
        key = str(cid)
        seen.add(key)
        srec = records.get(key)
        if how == "error":
            continue  # the client has counted it already
        if srec is None:
            if mode in (P.DROP, P.RESET):
                missing_on_server += 1  # went away before its header was read
            else:
                bad(f"connection {cid} ({P.MODE_NAMES[mode]}, {how}): the server has no "
                    f"record of it")
            continue
        smode, echoed, outcome, in_send = srec
        name = P.MODE_NAMES[mode]
        if smode != mode:
            bad(f"connection {cid}: mode {name} on the client, {smode} on the server")
        elif received > echoed + in_send or echoed > sent:
            bad(f"connection {cid} ({name}): client sent {sent} and got {received} back; "
                f"server echoed {echoed} (+{in_send} in an interrupted send)")
        elif mode in (P.NORMAL, P.SLOW):
            if outcome != P.OUT_EOF or not (sent == received == echoed):
                bad(f"connection {cid} ({name}) complete on the client (sent {sent}, got "
                    f"{received}), server: {outcome}, echoed {echoed}")
        elif mode == P.CANCEL:
            if outcome != P.OUT_CANCELLED:
                bad(f"connection {cid} ended by the server ({how}) but its handler "
                    f"ended {outcome!r}, not by its cancel scope")
        elif outcome not in (P.OUT_EOF, P.OUT_BROKEN):
            bad(f"connection {cid} ({name}) ended by the client, but its handler ended "
                f"{outcome!r}")
    unknown = [k for k in records if k not in seen]
    if unknown:
        bad(f"the server has records of {len(unknown)} connections the client never "
            f"reported, e.g. {unknown[:5]}")
    headerless = server.get("headerless", 0)
    if not client.get("errors") and headerless != missing_on_server:
        bad(f"{headerless} handlers saw no header, but {missing_on_server} client drops/"
            f"resets left no server record")
    opened = client.get("connections_opened", 0)
    if server.get("accepted", 0) != opened:  # accept must lose none, even reset ones
        bad(f"the server accepted {server.get('accepted')} connections, the client opened "
            f"{opened}")
    return {
        "errors": errors,
        "mismatches": mismatches,
        "client_records": len(client_records),
        "server_records": len(records),
        "dropped_before_header": missing_on_server,
    }


def heap_report(heap: dict[str, int], bound_blocks: int) -> dict[str, Any]:
    """The server's live Python heap after every connection closed, against before."""
    out: dict[str, Any] = dict(heap)
    out["bound_blocks"] = bound_blocks
    out["flag"] = ""
    if "blocks_before" in heap and "blocks_after" in heap:
        growth = heap["blocks_after"] - heap["blocks_before"]
        out["growth_blocks"] = growth
        if growth > bound_blocks:
            out["flag"] = (f"the server's Python heap holds {growth} more blocks after the "
                           f"run than before it (bound {bound_blocks}): a leak")
    else:
        out["flag"] = "the server did not report its Python heap"
    return out


def rss_report(samples: list[tuple[float, int, int]], warmup: float, bound_mb: float) -> dict:
    """RSS over time; flags growth of more than *bound_mb* MiB from the first sample
    after *warmup* seconds to the largest one after it."""
    mib = 1024.0
    series = [(t, kib) for t, kib, _ in samples]
    after = [(t, kib) for t, kib in series if t >= warmup] or series[-1:]
    warm = after[0][1]
    peak = max(kib for _, kib in after)
    slope = 0.0
    if len(after) >= 3:  # least squares, MiB per minute
        n = len(after)
        mt = sum(t for t, _ in after) / n
        mk = sum(k for _, k in after) / n
        var = sum((t - mt) ** 2 for t, _ in after)
        if var:
            slope = sum((t - mt) * (k - mk) for t, k in after) / var * 60 / mib
    growth = (peak - warm) / mib
    flag = ""
    if growth > bound_mb:
        flag = (f"server RSS grew {growth:.1f} MiB after the {warmup:g} s warm-up "
                f"({warm / mib:.1f} -> {peak / mib:.1f} MiB; bound {bound_mb:g} MiB)")
    return {
        "start_mib": round(series[0][1] / mib, 1),
        "warm_mib": round(warm / mib, 1),
        "max_after_warm_mib": round(peak / mib, 1),
        "end_mib": round(series[-1][1] / mib, 1),
        "max_mib": round(max(k for _, k in series) / mib, 1),
        "growth_after_warm_mib": round(growth, 1),
        "slope_mib_per_min": round(slope, 2),
        "bound_mib": bound_mb,
        "warmup_s": warmup,
        "flag": flag,
        "series": series,
    }
