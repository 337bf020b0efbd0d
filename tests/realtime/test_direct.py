"""Prepared frames (realtime/direct.py): the bytes a server must send, built once."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from realtime.direct import (
    DaphneWriter,
    SocketWriter,
    prepared_text,
    socket_writer,
    text_frame,
)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frame_is_what_websockets_serialises(size):
    text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte: lengths are in bytes
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert text_frame(text) == expected


def test_one_broadcast_is_framed_once():
    text = "a broadcast"
    first = prepared_text(text)
    assert prepared_text(text) is first  # the next receiver shares the bytes
    other = prepared_text("another")
    assert other == text_frame("another") and prepared_text(text) == first


async def test_other_servers_get_the_ordinary_send():
    async def send(message):  # daphne, the test communicator: a plain callable
        pass

    assert socket_writer(send) is None

    class Protocol:  # a look-alike with another name is not trusted either
        async def send(self, message):
            pass

    assert socket_writer(Protocol().send) is None


class Transport:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = True


def sansio(extensions=()):
    """What SocketWriter reads of uvicorn's websockets-sansio protocol."""
    conn = SimpleNamespace(extensions=list(extensions), state=State.OPEN)
    writable = asyncio.Event()
    writable.set()
    return SimpleNamespace(
        conn=conn,
        transport=Transport(),
        writable=writable,
        close_sent=False,
        disconnected=False,
    )


async def test_the_writer_writes_only_while_the_connection_may_take_it():
    protocol = sansio()
    writer = SocketWriter(protocol)
    assert writer.write(b"a") and protocol.transport.data == [b"a"]
    protocol.writable.clear()  # the client is behind
    assert writer.paused() and not writer.write(b"b")
    protocol.writable.set()
    protocol.conn.state = State.CLOSING
    assert not writer.write(b"c")
    protocol.conn.state = State.OPEN
    protocol.close_sent = True
    assert writer.closed() and not writer.write(b"d")
    protocol.close_sent = False
    protocol.transport.closing = True
    assert writer.closed() and not writer.write(b"e")
    assert protocol.transport.data == [b"a"]


async def test_a_compressed_connection_is_never_written_prepared():
    writer = SocketWriter(sansio(extensions=["permessage-deflate"]))
    assert not writer.prepared_ok and not writer.write(b"a")


async def test_abort_cuts_only_a_connection_still_open():
    protocol = sansio()
    SocketWriter(protocol).abort()
    assert protocol.transport.aborted
    gone = sansio()
    gone.disconnected = True
    SocketWriter(gone).abort()
    assert not gone.transport.aborted


async def test_prepared_frames_can_be_turned_off_and_the_rest_still_works():
    protocol = sansio()
    writer = SocketWriter(protocol, prepared=False)  # REALTIME_DIRECT_WRITES=0
    assert not writer.write(b"a") and protocol.transport.data == []
    protocol.writable.clear()
    assert writer.paused()


# ------------------------------------------------------------------ daphne
def _named(module: str, name: str, **attrs):
    return type(name, (), {"__module__": module, **attrs})


class TwistedTCP:
    """What DaphneWriter reads of twisted.internet.tcp.Server."""

    TLS = False

    def __init__(self, takes: int | None = None) -> None:
        self.connected, self.disconnecting, self._writeDisconnected = 1, False, False
        self._tempDataLen, self.dataBuffer, self.offset = 0, b"", 0
        self.takes = takes  # bytes the kernel accepts per send; None: all
        self.sent: list[bytes] = []  # on the wire
        self.buffered: list[bytes] = []  # held by Twisted
        self.aborted = False

    def writeSomeData(self, data: bytes):  # noqa: N802 - Twisted's name
        if self.takes == -1:
            return ConnectionError("lost")  # Twisted returns, not raises, a failure
        n = len(data) if self.takes is None else min(self.takes, len(data))
        self.sent.append(bytes(data[:n]))
        return n

    def write(self, data: bytes) -> None:
        self.buffered.append(bytes(data))
        self._tempDataLen += len(data)

    def abortConnection(self) -> None:  # noqa: N802
        self.aborted = True


class Server(TwistedTCP):
    """Named as Twisted's plain TCP server transport, which is what is trusted."""


Server.__module__ = "twisted.internet.tcp"


def daphne_send(transport, *, compress=None, state=3):
    """daphne's ASGI send: functools.partial(server.handle_reply, protocol)."""
    protocol = _named("daphne.ws_protocol", "WebSocketProtocol")()
    protocol.transport = transport
    protocol.state = state
    protocol._perMessageCompress = compress
    protocol.send_queue = []
    protocol.maxMessagePayloadSize = 1024

    async def handle_reply(protocol, message):
        pass

    return functools.partial(handle_reply, protocol), protocol


def test_daphne_on_plain_tcp_is_recognised_and_tls_or_look_alikes_are_not():
    transport = Server()
    send, _ = daphne_send(transport)
    writer = socket_writer(send)
    assert isinstance(writer, DaphneWriter) and not writer.sends_wait
    transport.TLS = True  # daphne terminating TLS: Twisted's TLS layer writes
    assert socket_writer(send) is None
    assert socket_writer(daphne_send(TwistedTCP())[0]) is None  # another class
    assert socket_writer(functools.partial(print, object())) is None


def test_the_daphne_writer_sends_at_once_or_behind_what_twisted_holds():
    transport = Server(takes=4)
    send, protocol = daphne_send(transport)
    writer = DaphneWriter(protocol)
    assert writer.write(b"abcdef") is True  # the kernel takes 4, Twisted the rest
    assert transport.sent == [b"abcd"] and transport.buffered == [b"ef"]
    assert writer.write(b"gh") is True  # Twisted still holds bytes: behind them
    assert transport.sent == [b"abcd"] and transport.buffered == [b"ef", b"gh"]
    transport._tempDataLen, transport.dataBuffer, transport.offset = 0, b"xyz", 1
    assert writer.write(b"ij") and transport.buffered[-1] == b"ij"  # partly sent
    transport._tempDataLen, transport.dataBuffer, transport.offset = 0, b"", 0
    transport.takes = None  # Twisted has written everything out
    assert writer.write(b"kl") and transport.sent[-1] == b"kl"
    transport.takes = -1  # the connection is gone: Twisted's write path finds out
    assert writer.write(b"mn") is True and transport.buffered[-1] == b"mn"
    assert not writer.paused() and not writer.closed()


def test_a_daphne_client_far_behind_is_paused_and_takes_no_more_frames():
    """Past PAUSE_BYTES held by Twisted the writer declines: the outbox queues the
    client's broadcasts under REALTIME_MAX_QUEUED_BYTES instead of Twisted's buffer
    growing without a bound (uvicorn's own send waits at the same point)."""
    from realtime.direct import PAUSE_BYTES

    transport = Server(takes=0)  # the client reads nothing
    send, protocol = daphne_send(transport)
    protocol.maxMessagePayloadSize = 0  # daphne's own limit aside here
    writer = DaphneWriter(protocol)
    frame = b"x" * 4096
    while not writer.paused():
        assert writer.write(frame) is True
    held = transport._tempDataLen
    assert PAUSE_BYTES < held <= PAUSE_BYTES + len(frame)
    assert writer.write(frame) is False and transport._tempDataLen == held
    transport._tempDataLen = 0  # Twisted wrote it all out: taking frames again
    assert not writer.paused() and writer.write(frame) is True


@pytest.mark.parametrize(
    "change",
    [
        {"state": 2},  # autobahn not open (closing)
        {"compress": object()},  # permessage-deflate
        {"connected": 0},
        {"disconnecting": True},
        {"prepared": False},  # REALTIME_DIRECT_WRITES=0
        {"send_queue": [(b"queued", True)]},  # autobahn holds a sync send
        {"frame": b"x" * 1025},  # past daphne's message size: autobahn refuses it
    ],
)
def test_the_daphne_writer_declines_when_asgi_must_send(change):
    transport = Server()
    send, protocol = daphne_send(
        transport, state=change.get("state", 3), compress=change.get("compress")
    )
    for name in ("connected", "disconnecting"):
        if name in change:
            setattr(transport, name, change[name])
    protocol.send_queue = change.get("send_queue", [])
    writer = DaphneWriter(protocol, prepared=change.get("prepared", True))
    assert writer.write(change.get("frame", b"x")) is False and transport.sent == []
    writer.abort()
    assert transport.aborted == bool(transport.connected)


async def test_uvicorns_protocol_is_recognised_by_class_and_attributes():
    cls = _named(
        "uvicorn.protocols.websockets.websockets_sansio_impl",
        "WebSocketsSansIOProtocol",
    )
    protocol = cls()
    protocol.__dict__.update(vars(sansio()))

    async def send(self, message):
        pass

    bound = send.__get__(protocol)
    assert isinstance(socket_writer(bound), SocketWriter)
    assert socket_writer(bound, prepared=False).prepared_ok is False
    del protocol.writable  # another uvicorn version: the ordinary send
    assert socket_writer(bound) is None


def test_a_daphne_transport_without_twisteds_buffer_attributes_is_not_trusted():
    transport = Server()
    del transport.offset  # a Twisted that buffers differently
    assert socket_writer(daphne_send(transport)[0]) is None
