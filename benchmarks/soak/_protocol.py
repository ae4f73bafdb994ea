"""What the soak's client and server agree on: the connection header and the codes in it.

Design notes: the client decides everything random about a connection (its mode, sizes,
when to drop or reset it, and whether and when the *server* cancels its handler) and
tells the server in a 16-byte header that precedes the echoed stream and is not echoed
itself. So one seeded generator in the client plans the whole run, and each side can
check the other: the client knows which connections the server may legitimately end
early, and the server knows which of its handlers must end by EOF. Stdlib only: the
client and the driver never import vivace.
"""

from __future__ import annotations

import resource
import struct

MAGIC = b"SOAK"
# magic, connection id, mode, server cancel kind, server cancel delay (ms), reserved
HEADER = struct.Struct("!4sIBBHI")
assert HEADER.size == 16

# Connection modes (how the client drives and ends the connection).
NORMAL = 0  # send a planned amount, half-close, read the whole echo, server ends by EOF
SLOW = 1  # like NORMAL, but stops reading for a while so the server's send blocks
DROP = 2  # the client closes mid-stream (FIN, or RST if echoed bytes were unread)
RESET = 3  # the client closes mid-stream with SO_LINGER 0: always RST
CANCEL = 4  # sends until the server's handler is cancelled (by deadline or cancel())
MODE_NAMES = ("normal", "slow", "drop", "reset", "cancel")

# How the server cancels a CANCEL connection's handler.
CANCEL_NONE = 0
CANCEL_DEADLINE = 1  # the handler's cancel scope gets a deadline (move_on_after)
CANCEL_EXPLICIT = 2  # a sibling task sleeps, then calls the scope's cancel()
CANCEL_KIND_NAMES = ("none", "deadline", "explicit")

# How a handler ended, as the server records it.
OUT_EOF = "eof"  # the client half-closed and everything was echoed
OUT_CANCELLED = "cancelled"  # the handler's cancel scope caught its cancellation
OUT_BROKEN = "broken"  # the client reset or closed the connection under us


def raise_nofile_to_hard_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (1,000 connections need more
    than the usual 1,024); returns the new (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)
