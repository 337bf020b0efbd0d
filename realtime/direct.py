"""Prepared frames: a broadcast is framed once per process, not once per receiver.

Through ASGI every ``websocket.send`` is framed again by the server, per receiver: on
uvicorn's websockets-sansio protocol that is the text encoded, a frame object built
and serialised, the bytes joined, and only then the one socket write that must happen
per receiver (profiled on bench W1: the framing and the ASGI hop cost about a third of
what the write itself does). Centrifugo
and gorilla/websocket's ``PreparedMessage`` frame a broadcast once; so does this module,
where the server allows it:

* ``text_frame(text)`` builds the unmasked, unfragmented text frame a server sends
  (RFC 6455 §5.2); ``prepared_text`` keeps the last one, so the receivers of one
  broadcast (delivered one after another by the hub) share it.
* ``socket_writer(send)`` recognises uvicorn's websockets-sansio protocol, or daphne's
  (autobahn on a plain Twisted TCP transport), behind an ASGI ``send``. Its ``write``
  puts a prepared frame on the transport, or declines (``False``) whenever the
  ordinary path must be taken: a compression extension was negotiated (browsers ask
  uvicorn for permessage-deflate: frames differ per receiver), the server is applying
  back-pressure, or the connection is closing. Anything else (daphne terminating TLS,
  another server) gets ``None``: the ordinary ``send``.
* ``paused()`` says the client is behind: uvicorn's ``send`` would wait until it reads
  again, and the hub, which delivers to one socket after another, with it. The consumer
  queues that socket's broadcasts instead (bounded; past the bound it closes it 4012).

A socket's own frames (replies, errors, greetings) are framed here too, with
``text_frame`` (``EnvelopeConsumer.send_text``): no ASGI hop and no second framing on
the per-frame path of bench W3.

The consumer writes directly only while none of its ordinary sends is in progress, so
frames never overtake each other (``EnvelopeConsumer.deliver_now``,
``write_broadcast`` and, with no broadcast queued either, ``send_text``). The check is
on the exact classes and attributes of the uvicorn, daphne and Twisted versions in
requirements.txt; anything else falls back, and ``REALTIME_DIRECT_WRITES=0`` turns it
off.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from websockets.protocol import State

SANSIO_PROTOCOLS = (
    ("uvicorn.protocols.websockets.websockets_sansio_impl", "WebSocketsSansIOProtocol"),
    ("realtime.uvicorn_protocol", "LeanWebSocketProtocol"),  # the same, holding less
)


def text_frame(text: str) -> bytes:
    """One final, unmasked text frame carrying ``text`` (server to client)."""
    data = text.encode("utf-8")
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + data


_last: list[Any] = [None, b""]  # [text, its frame]: one broadcast's receivers share it


def prepared_text(text: str) -> bytes:
    """``text_frame(text)``, built once for consecutive calls with the same object."""
    if _last[0] is not text:
        _last[1] = text_frame(text)
        _last[0] = text
    return _last[1]


class SocketWriter:
    """uvicorn's websockets-sansio connection behind one ASGI ``send``."""

    sends_wait = True  # uvicorn's send waits while the client is behind

    def __init__(self, protocol: Any, *, prepared: bool = True) -> None:
        self.protocol = protocol
        self.conn = protocol.conn
        self.transport = protocol.transport
        self.writable = protocol.writable
        # permessage-deflate (browsers ask for it): frames differ per receiver.
        self.prepared_ok = prepared and not getattr(self.conn, "extensions", None)

    def paused(self) -> bool:
        """The client is behind: uvicorn's ``send`` would wait until it reads."""
        return not self.writable.is_set()

    def closed(self) -> bool:
        """No frame may be sent any more (uvicorn's ``send`` would raise)."""
        protocol = self.protocol
        return (
            protocol.close_sent or protocol.disconnected or self.transport.is_closing()
        )

    def write(self, frame: bytes) -> bool:
        """Write a prepared frame; ``False``: take ASGI's ``send`` instead."""
        if (
            not self.prepared_ok
            or not self.writable.is_set()
            or self.closed()
            or self.conn.state is not State.OPEN
        ):
            return False
        self.transport.write(frame)
        return True

    def abort(self) -> None:
        """Drop the connection without a closing handshake (the client is stuck)."""
        if not self.protocol.disconnected:
            self.transport.abort()


class DaphneWriter:
    """daphne's WebSocket protocol (autobahn on a plain Twisted TCP transport).

    Through ASGI each frame is framed by autobahn and handed to Twisted, which
    buffers it and registers the socket as a writer until the next loop tick: an
    ``epoll_ctl`` to add it and another to remove it, per frame and receiver
    (profiled on bench W1: ~60% of a fan-out on daphne). Here a frame is sent at once
    when Twisted holds nothing for the socket (``writeSomeData``, Twisted's own
    non-blocking send), and whatever the kernel does not take, or anything while
    Twisted still holds bytes, is given to Twisted's ``write`` behind them: the order
    on the wire is the order of the calls. daphne's sends never wait (Twisted buffers
    without bound), so the client is ``paused`` once Twisted holds more than
    ``PAUSE_BYTES`` for it: the outbox then queues its broadcasts, bounded by
    ``REALTIME_MAX_QUEUED_BYTES`` and 4012, as on uvicorn.
    """

    sends_wait = False  # daphne's close handshake and timeouts are its own

    def __init__(self, protocol: Any, *, prepared: bool = True) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.prepared_ok = prepared

    def paused(self) -> bool:
        """Twisted holds more than ``PAUSE_BYTES`` the kernel has not taken."""
        transport = self.transport
        held = transport._tempDataLen + len(transport.dataBuffer) - transport.offset
        return held > PAUSE_BYTES

    def closed(self) -> bool:
        transport = self.transport
        return (
            not transport.connected
            or transport.disconnecting
            or transport._writeDisconnected
        )

    def write(self, frame: bytes) -> bool:
        """Send a prepared frame; ``False``: take ASGI's ``send`` instead."""
        protocol = self.protocol
        if (
            not self.prepared_ok
            or protocol.state != AUTOBAHN_OPEN
            or protocol._perMessageCompress is not None
            or protocol.send_queue  # autobahn's own queue (sync or chopped sends)
            or len(frame) > (protocol.maxMessagePayloadSize or len(frame))
            or self.closed()
        ):
            return False  # ASGI's send: autobahn decides, as it always did
        transport = self.transport
        if transport._tempDataLen or len(transport.dataBuffer) > transport.offset:
            if self.paused():
                return False  # far behind: the outbox queues it, bounded
            transport.write(frame)  # behind what Twisted still holds
            return True
        sent = transport.writeSomeData(frame)
        if not isinstance(sent, int):  # lost: Twisted's own write path finds out now
            sent = 0
        if sent < len(frame):
            transport.write(frame[sent:])
        return True

    def abort(self) -> None:
        if self.transport.connected:
            self.transport.abortConnection()


AUTOBAHN_OPEN = 3  # autobahn's WebSocketProtocol.STATE_OPEN
# A client this far behind on daphne is queued by the outbox, as uvicorn's own
# buffer (its high-water mark is 64 KiB too) makes its sends wait.
PAUSE_BYTES = 64 * 1024
DAPHNE_PROTOCOL = ("daphne.ws_protocol", "WebSocketProtocol")
TWISTED_TCP = ("twisted.internet.tcp", "Server")


def _is(obj: Any, kind: tuple[str, str]) -> bool:
    cls = type(obj)
    return (cls.__module__, cls.__name__) == kind


def daphne_protocol(send: Callable) -> Any:
    """daphne's WebSocket protocol behind an ASGI ``send``, else ``None``: daphne's
    send is ``functools.partial(server.handle_reply, protocol)``."""
    protocol = next(iter(getattr(send, "args", ())), None)
    return protocol if _is(protocol, DAPHNE_PROTOCOL) else None


def socket_writer(
    send: Callable, *, prepared: bool = True
) -> SocketWriter | DaphneWriter | None:
    """The writer of the server behind ``send``: uvicorn's websockets-sansio
    protocol or daphne's on plain TCP; ``None`` for anything else (TLS terminated by
    daphne, a test communicator...). ``prepared=False``: no prepared frames
    (``REALTIME_DIRECT_WRITES=0``), the rest (back-pressure, closing) as usual."""
    protocol = getattr(send, "__self__", None)
    if any(_is(protocol, kind) for kind in SANSIO_PROTOCOLS):
        if not all(
            hasattr(protocol, name)
            for name in ("conn", "transport", "writable", "close_sent", "disconnected")
        ):
            return None
        return SocketWriter(protocol, prepared=prepared)
    protocol = daphne_protocol(send)
    if protocol is None:
        return None
    transport = getattr(protocol, "transport", None)
    if not _is(transport, TWISTED_TCP) or getattr(transport, "TLS", True):
        return None
    if not all(
        hasattr(protocol, name)
        for name in ("_perMessageCompress", "send_queue", "maxMessagePayloadSize")
    ) or not all(
        hasattr(transport, name)
        for name in (
            "connected",
            "disconnecting",
            "_writeDisconnected",
            "_tempDataLen",
            "dataBuffer",
            "offset",
            "writeSomeData",
            "abortConnection",
        )
    ):
        return None
    return DaphneWriter(protocol, prepared=prepared)
