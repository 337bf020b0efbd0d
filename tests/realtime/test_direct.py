"""Prepared frames (realtime/direct.py): the bytes a server must send, built once."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from realtime.direct import prepared_text, socket_writer, text_frame


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
