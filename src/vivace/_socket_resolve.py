"""Name resolution for vivace.socket: hostname encoding, the pluggable resolver and
socket factory, ``getaddrinfo``/``getnameinfo``/``getprotobyname``, and the address
normalisation every socket method runs before its syscall.

Design notes:
- A numeric request (an IP literal and a numeric port) never needs DNS, so it is answered
  in the calling task with ``AI_NUMERICHOST | AI_NUMERICSERV``; only when libc says
  "that is not numeric" (EAI_NONAME) do we pay for a worker thread. Any other error from
  the numeric attempt is the real answer and is raised as is.
- The stdlib functions are looked up on the ``socket`` module at call time, never bound at
  import: tests (and some applications) monkeypatch ``socket.getaddrinfo``.
- Overrides live in RunVars, so they are per-run and vanish with the run.
"""

from __future__ import annotations

import os
import socket as _stdlib_socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ._core import RunVar, cancel_shielded_checkpoint, checkpoint_if_cancelled
from ._threads import to_thread_run_sync

if TYPE_CHECKING:
    from ._abc import HostnameResolver, SocketFactory

_idna: Any
try:
    import idna as _idna  # optional: IDNA 2008 with UTS-46 mapping
except ImportError:  # pragma: no cover - depends on the environment
    _idna = None

_NUMERIC_ONLY = _stdlib_socket.AI_NUMERICHOST | _stdlib_socket.AI_NUMERICSERV

_resolver: RunVar[HostnameResolver | None] = RunVar("hostname_resolver")
_socket_factory: RunVar[SocketFactory | None] = RunVar("socket_factory")


@asynccontextmanager
async def try_sync(
    is_blocking: Callable[[BaseException], bool] | None = None,
) -> AsyncIterator[None]:
    """Run a non-blocking attempt inside a checkpoint.

    Checks for cancellation first; if the body finishes (or raises something that is not
    "would block"), adds the schedule point so the whole call was a full checkpoint. A
    would-block error is swallowed, and the caller goes on to wait: that wait is then
    the checkpoint.
    """
    await checkpoint_if_cancelled()
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, BlockingIOError) or (is_blocking is not None and is_blocking(exc)):
            return
        await cancel_shielded_checkpoint()
        raise
    else:
        await cancel_shielded_checkpoint()


def encode_hostname(hostname: str) -> bytes:
    """Return the bytes vivace sends to the resolver for *hostname*.

    ASCII names (including IP literals) pass through unchanged; other names are encoded
    with IDNA 2008 and UTS-46 mapping when the ``idna`` package is available, else with
    Python's built-in (IDNA 2003) codec.
    """
    try:
        return hostname.encode("ascii")
    except UnicodeEncodeError:
        if _idna is not None:
            encoded: bytes = _idna.encode(hostname, uts46=True)
            return encoded
        return hostname.encode("idna")


def set_custom_hostname_resolver(
    hostname_resolver: HostnameResolver | None,
) -> HostnameResolver | None:
    """Make ``getaddrinfo``/``getnameinfo`` in this run delegate to *hostname_resolver*
    (``None`` restores the system resolver). Returns the previous resolver."""
    old = _resolver.get(None)
    _resolver.set(hostname_resolver)
    return old


def set_custom_socket_factory(
    socket_factory: SocketFactory | None,
) -> SocketFactory | None:
    """Make ``vivace.socket.socket()`` (without ``fileno=``) in this run delegate to
    *socket_factory* (``None`` restores the default). Returns the previous factory."""
    old = _socket_factory.get(None)
    _socket_factory.set(socket_factory)
    return old


def _is_not_numeric(exc: BaseException) -> bool:
    return isinstance(exc, _stdlib_socket.gaierror) and exc.errno == _stdlib_socket.EAI_NONAME


async def getaddrinfo(
    host: bytes | str | None,
    port: bytes | str | int | None,
    family: int = 0, type: int = 0, proto: int = 0, flags: int = 0,
) -> list[tuple[Any, ...]]:
    """Look up *host*/*port* like ``socket.getaddrinfo``, without blocking the run.

    Numeric hosts are answered at once; others go to the custom resolver if one is set,
    else to the system resolver in a worker thread (abandoned if the call is
    cancelled). Unicode host names are IDNA-encoded first (see
    ``vivace.lowlevel.encode_hostname``).
    """
    async with try_sync(_is_not_numeric):
        result: list[tuple[Any, ...]] = _stdlib_socket.getaddrinfo(
            host, port, family, type, proto, flags | _NUMERIC_ONLY
        )
        return result
    if isinstance(host, str):
        host = encode_hostname(host)
    resolver = _resolver.get(None)
    if resolver is not None:
        return await resolver.getaddrinfo(host, port, family, type, proto, flags)
    # The system resolver blocks: run it in a thread we may abandon on cancellation.
    lookup_args = (host, port, family, type, proto, flags)
    answer: list[tuple[Any, ...]] = await to_thread_run_sync(
        _stdlib_socket.getaddrinfo, *lookup_args, abandon_on_cancel=True
    )
    return answer


async def getnameinfo(
    sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
) -> tuple[str, str]:
    """Reverse-resolve *sockaddr* like ``socket.getnameinfo``, in a worker thread (or
    through the custom resolver)."""
    resolver = _resolver.get(None)
    if resolver is not None:
        return await resolver.getnameinfo(sockaddr, flags)
    answer: tuple[str, str] = await to_thread_run_sync(
        _stdlib_socket.getnameinfo, sockaddr, flags, abandon_on_cancel=True
    )
    return answer


async def getprotobyname(name: str) -> int:
    """Look up a protocol number by name, like ``socket.getprotobyname``."""
    number: int = await to_thread_run_sync(
        _stdlib_socket.getprotobyname, name, abandon_on_cancel=True
    )
    return number


def _is_numeric_host(family: int, host: Any) -> bool:
    """True if *host* is already a literal address of *family* (no lookup needed)."""
    if host is None:
        return False
    try:
        _stdlib_socket.inet_pton(family, host)
    except (OSError, TypeError):
        return False
    return True


async def resolve_address_nocp(
    type_: int,
    family: int,
    proto: int,
    *,
    ipv6_v6only: bool | int,
    address: Any,
    local: bool,
) -> Any:
    """Normalise *address* for a socket of the given kind: IP addresses become the
    numeric tuple the kernel wants (resolving names if needed); other families pass
    through. Not a checkpoint by itself when the address is already numeric."""
    if family == _stdlib_socket.AF_INET:
        if not isinstance(address, tuple) or len(address) != 2:
            raise ValueError("address should be a (host, port) tuple")
    elif family == _stdlib_socket.AF_INET6:
        if not isinstance(address, tuple) or not 2 <= len(address) <= 4:
            raise ValueError("address should be a (host, port, [flowinfo, [scopeid]]) tuple")
    elif hasattr(_stdlib_socket, "AF_UNIX") and family == _stdlib_socket.AF_UNIX:
        return os.fspath(address)
    else:
        return address

    host, port = address[0], address[1]
    if isinstance(port, int) and _is_numeric_host(family, host):
        # Already numeric: skip the resolver entirely (this is every sendto()).
        return address
    if host == "":
        host = None
    elif host == "<broadcast>":
        host = "255.255.255.255"
    flags = _stdlib_socket.AI_PASSIVE if local else 0
    if family == _stdlib_socket.AF_INET6 and not ipv6_v6only:
        flags |= _stdlib_socket.AI_V4MAPPED
    answers = await getaddrinfo(host, port, family, type_, proto, flags)
    normed = answers[0][-1]
    if family == _stdlib_socket.AF_INET6:
        # getaddrinfo drops flowinfo/scope id: keep the caller's.
        parts = list(normed)
        for index in (2, 3):
            if len(address) > index:
                parts[index] = address[index]
        return tuple(parts)
    return normed
