"""TLS on top of any vivace stream: ``SSLStream``, ``SSLListener``, ``NeedHandshakeError``.

Design notes
------------
The stdlib's ``ssl.SSLObject`` is a pure protocol state machine: it reads ciphertext from
one ``MemoryBIO`` (``_incoming``) and writes ciphertext into another (``_outgoing``); it
never touches a socket. Everything here is the glue that moves bytes between those BIOs
and the wrapped transport stream, in ``_pump``:

* Call the SSLObject operation. Whatever ciphertext it produced is flushed to the
  transport *before* we go looking for more input, because the peer may be waiting for
  exactly those bytes before it will send anything back (handshakes, renegotiation).
* On ``SSLWantReadError`` with nothing to flush, read one chunk from the transport into
  ``_incoming`` and retry.

Two user-facing directions (``send_all`` and ``receive_some``) may run at the same time,
and either may need to both send *and* receive on the transport (TLS is not two
independent half-duplex pipes). So the transport has its own internal locks:

* ``_transport_send_lock`` is a ``StrictFIFOLock``: ciphertext is order-sensitive, and
  whoever drained ``_outgoing`` first must also be first on the wire.
* ``_transport_recv_lock`` plus ``_transport_recv_generation``: when task A waits on the
  lock while task B reads a chunk, B's chunk may already be what A wanted, so A retries
  its SSLObject call instead of reading again (reading again could block forever).

A TLS 1.3 server finishes its handshake while the client still has the ``Finished``
message to process; the server's session tickets come out at that moment. Sending them
right away could deadlock on an unbuffered transport (both sides waiting in send), so
they are held back in ``_held_ciphertext`` and prepended to the next transport write.

The user-facing directions are guarded by ``OneAtATime`` detectors: two tasks sending
at once (or receiving at once) is a usage error, reported as ``BusyResourceError``.

State is a tiny enum: OK, BROKEN (any transport failure or TLS error -- every later
operation raises ``BrokenResourceError``) and CLOSED (``ClosedResourceError``).
"""

from __future__ import annotations

import enum
import operator
import ssl
from contextlib import suppress
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ._abc import Listener, Stream
from ._busy import OneAtATime
from ._core import (
    BrokenResourceError,
    BusyResourceError,
    ClosedResourceError,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    final,
)
from ._highlevel_generic import aclose_forcefully
from ._socket_resolve import encode_hostname
from ._sync import Event, Lock, StrictFIFOLock

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NeedHandshakeError", "SSLListener", "SSLStream"]

T_Stream = TypeVar("T_Stream", bound=Stream)
_R = TypeVar("_R")

# How much to ask the SSLObject for when receive_some() gets no max_bytes. A TLS record
# carries at most 16 KiB of plaintext; the estimate grows when the transport hands us
# bigger chunks, so one call can drain what one transport read delivered.
STARTING_RECEIVE_SIZE = 16384


def _is_eof(exc: BaseException | None) -> bool:
    """True if *exc* is OpenSSL's way of saying "the peer vanished without close_notify".

    Depending on the OpenSSL version this is an ``SSLEOFError`` or a plain ``SSLError``
    whose reason mentions UNEXPECTED_EOF_WHILE_READING.
    """
    if isinstance(exc, ssl.SSLEOFError):
        return True
    reason = getattr(exc, "strerror", None)
    return isinstance(reason, str) and "UNEXPECTED_EOF_WHILE_READING" in reason


class NeedHandshakeError(Exception):
    """Raised by ``SSLStream`` attributes that have no meaningful value until the TLS
    handshake is complete (the peer certificate, the negotiated cipher, ...).

    Call ``await stream.do_handshake()`` first.
    """


class _HandshakeGate:
    """Runs the handshake exactly once; later and concurrent callers wait for it.

    ``succeeded`` is what the "needs a handshake" attributes consult. When the first
    attempt fails (error or cancellation), the stream is BROKEN and the waiters are
    released; they then see the broken state.
    """

    __slots__ = ("_finished", "_stream", "started", "succeeded")

    def __init__(self, stream: SSLStream[Any]) -> None:
        self._stream = stream
        self.started = False
        self.succeeded = False
        self._finished = Event()

    async def ensure(self, *, checkpoint: bool) -> None:
        if not self.started:
            self.started = True
            try:
                await self._stream._run_handshake()
                self.succeeded = True
            finally:
                self._finished.set()
            return
        if self.succeeded and not checkpoint:
            # The caller's own I/O supplies the checkpoint.
            return
        await self._finished.wait()
        if not self.succeeded:
            self._stream._check_status()
            raise BrokenResourceError("the TLS handshake failed in another task")


class _State(enum.Enum):
    OK = "ok"
    BROKEN = "broken"
    CLOSED = "closed"


@final
class SSLStream(Stream, Generic[T_Stream]):
    """A ``Stream`` that speaks TLS over another ``Stream`` (``transport_stream``).

    Build it with the transport, an ``ssl.SSLContext`` and the usual
    ``server_hostname`` / ``server_side`` choices. The handshake happens on first use
    (or explicitly with :meth:`do_handshake`); ``send_all``/``receive_some`` then carry
    plaintext while ciphertext flows on the transport.

    ``https_compatible=True`` follows what HTTPS servers actually do: a peer that closes
    the connection without a close_notify is reported as a plain EOF (``b""``) instead
    of a ``BrokenResourceError``, and :meth:`aclose` does not send close_notify. Keep the
    default (False) for protocols that need truncation detection.

    A number of ``ssl.SSLObject`` attributes are readable straight from the stream:
    ``context``, ``server_side``, ``server_hostname``, ``session``, ``session_reused``,
    ``getpeercert``, ``selected_npn_protocol``, ``selected_alpn_protocol``, ``cipher``,
    ``shared_ciphers``, ``compression``, ``pending``, ``get_channel_binding`` and
    ``version``. Those describing the negotiated connection raise
    :exc:`NeedHandshakeError` before the handshake has completed.

    Errors: a TLS protocol error or transport failure marks the stream broken and raises
    ``BrokenResourceError`` (the original error is its ``__cause__``); any use after
    :meth:`aclose` or :meth:`unwrap` raises ``ClosedResourceError``. Cancelling a call
    that is in the middle of TLS traffic may leave the stream broken.
    """

    # SSLObject attributes that describe the negotiated connection: reading them
    # before the handshake has completed raises NeedHandshakeError.
    _needs_handshake: ClassVar[frozenset[str]] = frozenset(
        "cipher compression get_channel_binding getpeercert selected_alpn_protocol"
        " selected_npn_protocol session_reused shared_ciphers version".split()
    )
    # Everything readable (and settable) straight through to the SSLObject.
    _forwarded: ClassVar[frozenset[str]] = _needs_handshake | {
        "context",
        "pending",
        "server_hostname",
        "server_side",
        "session",
    }

    def __init__(
        self,
        transport_stream: T_Stream,
        ssl_context: ssl.SSLContext,
        *,
        server_hostname: str | bytes | None = None,
        server_side: bool = False,
        https_compatible: bool = False,
    ) -> None:
        if isinstance(server_hostname, str):
            # IDNA 2008 (what browsers and certificates use), not Python's IDNA 2003.
            server_hostname = encode_hostname(server_hostname)
        self.transport_stream: T_Stream = transport_stream
        self._state = _State.OK
        self._https_compatible = https_compatible
        # Ciphertext BIOs: peer -> SSLObject, and SSLObject -> peer.
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._held_ciphertext: bytes | None = None
        self._ssl_object = ssl_context.wrap_bio(
            self._incoming, self._outgoing, server_side, server_hostname
        )
        self._handshake = _HandshakeGate(self)
        self._transport_send_lock = StrictFIFOLock()
        self._transport_recv_lock = Lock()
        self._transport_recv_generation = 0
        self._send_guard = OneAtATime("another task is currently sending data on this SSLStream")
        self._recv_guard = OneAtATime("another task is currently receiving data on this SSLStream")
        self._estimated_receive_size = STARTING_RECEIVE_SIZE

    # -- SSLObject attribute forwarding ------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not found normally, i.e. never for our own fields.
        if name in SSLStream._forwarded:
            if name in SSLStream._needs_handshake and not self._handshake.succeeded:
                raise NeedHandshakeError(
                    f"{name!r} is only available after the TLS handshake; "
                    "call 'await stream.do_handshake()' first"
                )
            return getattr(self._ssl_object, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: object) -> None:
        if name in SSLStream._forwarded:
            setattr(self._ssl_object, name, value)
        else:
            super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *SSLStream._forwarded]

    # -- internals ------------------------------------------------------------

    def _check_status(self) -> None:
        if self._state is _State.BROKEN:
            raise BrokenResourceError("this SSLStream is broken by an earlier error")
        if self._state is _State.CLOSED:
            raise ClosedResourceError("this SSLStream was already closed")

    async def _pump(
        self,
        operation: Callable[..., _R],
        *args: Any,
        ignore_want_read: bool = False,
        is_handshake: bool = False,
    ) -> _R | None:
        """Run ``operation(*args)`` on the SSLObject until it completes, moving
        ciphertext between the BIOs and the transport as it asks. Always a checkpoint."""
        await checkpoint_if_cancelled()
        did_io = False
        result: _R | None = None
        while True:
            wants_input = False
            done = False
            try:
                result = operation(*args)
            except ssl.SSLWantReadError:
                wants_input = True
            except (ssl.SSLError, ssl.CertificateError) as exc:
                self._state = _State.BROKEN
                raise BrokenResourceError(f"TLS error: {exc}") from exc
            else:
                done = True
            if ignore_want_read:
                # close_notify: send ours, but do not wait for the peer's reply.
                wants_input = False
                done = True

            ciphertext = self._outgoing.read()
            if (
                is_handshake
                and done
                and self._ssl_object.server_side
                and self._ssl_object.version() == "TLSv1.3"
            ):
                # Hold the post-handshake session tickets; see the module notes.
                self._held_ciphertext = ciphertext
                ciphertext = b""

            if ciphertext:
                async with self._transport_send_lock:
                    did_io = True
                    if self._held_ciphertext is not None:
                        ciphertext = self._held_ciphertext + ciphertext
                        self._held_ciphertext = None
                    try:
                        await self.transport_stream.send_all(ciphertext)
                    except BaseException:
                        # Part of a record may be on the wire: nothing can follow it.
                        self._state = _State.BROKEN
                        raise
            elif wants_input:
                generation = self._transport_recv_generation
                async with self._transport_recv_lock:
                    did_io = True
                    if generation == self._transport_recv_generation:
                        # Nobody fed the SSLObject while we queued: read ourselves.
                        chunk = await self.transport_stream.receive_some()
                        if chunk:
                            if len(chunk) > self._estimated_receive_size:
                                self._estimated_receive_size = len(chunk)
                            self._incoming.write(chunk)
                        else:
                            self._incoming.write_eof()
                        self._transport_recv_generation += 1
            if done:
                break
        if not did_io:
            await cancel_shielded_checkpoint()
        return result

    async def _run_handshake(self) -> None:
        try:
            await self._pump(self._ssl_object.do_handshake, is_handshake=True)
        except BaseException:
            self._state = _State.BROKEN
            raise

    def _https_eof(self, exc: BrokenResourceError, *, during_handshake: bool) -> bool:
        if not self._https_compatible:
            return False
        cause = exc.__cause__
        if during_handshake and isinstance(cause, ssl.SSLSyscallError):
            return True
        return _is_eof(cause)

    # -- public API -----------------------------------------------------------

    async def do_handshake(self) -> None:
        """Complete the TLS handshake now, if it has not happened yet.

        Not required: the first ``send_all``/``receive_some`` does it implicitly. Useful
        to inspect the peer (``getpeercert()``, ``selected_alpn_protocol()``) before
        exchanging data. If another task is already handshaking, this waits for it;
        afterwards it is just a checkpoint. Cancelling it may break the stream.
        """
        self._check_status()
        await self._handshake.ensure(checkpoint=True)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Return some decrypted data (at most *max_bytes*), or ``b""`` at end of stream.

        Without *max_bytes* the size follows what the transport delivers. Performs the
        handshake first if needed. Cancelling it during a handshake or renegotiation
        may break the stream.
        """
        with self._recv_guard:
            self._check_status()
            try:
                await self._handshake.ensure(checkpoint=False)
            except BrokenResourceError as exc:
                if self._https_eof(exc, during_handshake=True):
                    await checkpoint()
                    return b""
                raise
            if max_bytes is None:
                # Anything already buffered in the BIO is taken in one go.
                max_bytes = max(self._estimated_receive_size, self._incoming.pending)
            else:
                max_bytes = operator.index(max_bytes)
                if max_bytes < 1:
                    raise ValueError("max_bytes must be >= 1")
            try:
                data = await self._pump(self._ssl_object.read, max_bytes)
            except BrokenResourceError as exc:
                if self._https_eof(exc, during_handshake=False):
                    await checkpoint()
                    return b""
                raise
            assert data is not None
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt *data* and send it on the transport, performing the handshake first
        if needed. Cancelling it may break the stream."""
        with self._send_guard:
            self._check_status()
            await self._handshake.ensure(checkpoint=False)
            if not data:
                await checkpoint()
                return
            await self._pump(self._ssl_object.write, data)

    async def unwrap(self) -> tuple[Stream, bytes | bytearray]:
        """Shut TLS down cleanly (close_notify both ways) and give back the transport.

        Returns ``(transport_stream, trailing_bytes)``: bytes already read from the
        transport past the end of the TLS session, to be treated as if the next
        ``transport_stream.receive_some()`` had returned them. Afterwards this
        ``SSLStream`` is closed. Rarely needed (STARTTLS-style protocols).
        """
        with self._recv_guard, self._send_guard:
            self._check_status()
            await self._handshake.ensure(checkpoint=False)
            await self._pump(self._ssl_object.unwrap)
            transport = self.transport_stream
            self._state = _State.CLOSED
            # The stream is closed; nothing may reach the transport through it again.
            self.transport_stream = None  # type: ignore[assignment]
            return transport, self._incoming.read()

    async def aclose(self) -> None:
        """Close the connection and the transport.

        Normally sends close_notify first (without waiting for the peer's reply); with
        ``https_compatible=True``, or when the stream is already broken, it just closes
        the transport. If the transport fails while sending close_notify, the transport
        is still closed and no error is raised for that. Closing twice is fine.
        """
        transport = self.transport_stream
        if self._state is _State.CLOSED:
            await checkpoint()
            return
        if self._state is not _State.OK or self._https_compatible:
            # Broken, or the peer does not expect close_notify: just drop the transport.
            self._state = _State.CLOSED
            await transport.aclose()
            return
        graceful = False
        try:
            # close_notify needs a finished handshake (a no-op if it is already done).
            await self._handshake.ensure(checkpoint=False)
            # The transport may already be dead, or another task may be using it:
            # either way our close_notify cannot be delivered, which is fine.
            with suppress(BrokenResourceError, BusyResourceError):
                await self._pump(self._ssl_object.unwrap, ignore_want_read=True)
            graceful = True
        finally:
            self._state = _State.CLOSED
            if not graceful:
                await aclose_forcefully(transport)
        await transport.aclose()

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the transport is ready to accept more ciphertext."""
        with self._send_guard:
            self._check_status()
            # Under the transport send lock: a pending send_all from a receive-side
            # renegotiation must finish before the transport can be called ready.
            async with self._transport_send_lock:
                await self.transport_stream.wait_send_all_might_not_block()


@final
class SSLListener(Listener[SSLStream[T_Stream]]):
    """A ``Listener`` whose ``accept`` wraps each accepted stream in a server-side
    ``SSLStream`` using *ssl_context* (and the given ``https_compatible``).

    The handshake is not done in ``accept``; it happens on the stream's first use.
    ``transport_listener`` is the wrapped listener.
    """

    def __init__(
        self,
        transport_listener: Listener[T_Stream],
        ssl_context: ssl.SSLContext,
        *,
        https_compatible: bool = False,
    ) -> None:
        self.transport_listener = transport_listener
        # Both settings are handed to every SSLStream that accept() builds.
        self._https_compatible = https_compatible
        self._ssl_context = ssl_context

    async def accept(self) -> SSLStream[T_Stream]:
        """Accept the next connection and return it as a server-side ``SSLStream``."""
        return SSLStream(
            await self.transport_listener.accept(),
            self._ssl_context,
            server_side=True,
            https_compatible=self._https_compatible,
        )

    async def aclose(self) -> None:
        """Close the wrapped listener."""
        await self.transport_listener.aclose()
