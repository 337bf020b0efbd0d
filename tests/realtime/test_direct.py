"""Prepared frames (realtime/direct.py): the bytes a server must send, built once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from realtime.direct import SocketWriter, prepared_text, socket_writer, text_frame


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
