"""realtime/uvicorn_protocol.py: uvicorn's websockets-sansio protocol holding less per
connection. Its queue and flag alone, then the protocol in a real uvicorn server in
this process (the e2e suite runs every uvicorn test on it, tests/e2e/server.py)."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from websockets.asyncio.client import connect

from realtime.direct import SocketWriter, socket_writer
from realtime.listening import UVICORN_FLAGS, UVICORN_WS
from realtime.uvicorn_protocol import Flag, Inbox, LeanWebSocketProtocol
from tests.e2e.server import start_uvicorn

pytestmark = pytest.mark.timeout(30)


async def test_the_inbox_hands_events_over_in_order_and_wakes_its_reader():
    inbox = Inbox()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert (inbox.empty(), inbox.qsize()) == (False, 2)
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    reading = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not reading.done()
    inbox.put_nowait(3)
    assert await asyncio.wait_for(reading, 1) == 3
    assert inbox.waiter is None


async def test_a_burst_of_events_is_read_in_order_and_the_list_let_go():
    inbox = Inbox()
    for n in range(10_000):  # one read of tiny frames can queue this many
        inbox.put_nowait(n)
    assert inbox.qsize() == 10_000
    assert [await inbox.get() for _ in range(10_000)] == list(range(10_000))
    assert inbox.empty() and inbox.items == [] and inbox.head == 0
    inbox.put_nowait("next")
    assert await inbox.get() == "next"


async def test_a_reader_after_a_cancelled_one_is_not_refused():
    inbox = Inbox()
    stale = asyncio.get_running_loop().create_future()
    stale.cancel()
    inbox.waiter = stale  # a cancelled read whose cleanup has not run yet
    reading = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("x")
    assert await asyncio.wait_for(reading, 1) == "x"


async def test_a_cancelled_read_loses_nothing_and_a_second_reader_is_refused():
    inbox = Inbox()
    reading = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await inbox.get()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    inbox.put_nowait("kept")  # no reader: nothing to wake, and nothing dropped
    assert await asyncio.wait_for(inbox.get(), 1) == "kept"


async def test_the_flag_waits_until_set_and_forgets_cancelled_waiters():
    flag = Flag(True)
    assert flag.is_set() and await flag.wait() is True
    flag.clear()
    first = asyncio.ensure_future(flag.wait())
    second = asyncio.ensure_future(flag.wait())
    gone = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not (first.done() or second.done()) and len(flag.waiters) == 3
    gone.cancel()
    await asyncio.sleep(0)
    assert len(flag.waiters) == 2  # the cancelled waiter is not kept
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(first, second), 1) == [True, True]
    assert flag.waiters is None
    flag.set()  # already set: nothing to do
    assert flag.is_set()


def test_the_queue_and_flag_have_every_method_uvicorns_protocol_calls():
    source = inspect.getsource(WebSocketsSansIOProtocol)
    for attribute, cls in (("queue", Inbox), ("writable", Flag)):
        called = set(re.findall(rf"self\.{attribute}\.(\w+)", source))
        assert called and all(hasattr(cls, name) for name in called), called


def test_no_slot_hides_a_class_attribute_of_uvicorns():
    for cls in WebSocketsSansIOProtocol.__mro__:
        hidden = set(LeanWebSocketProtocol.__slots__) & set(vars(cls))
        assert hidden == set(), cls


def test_every_uvicorn_the_project_starts_names_the_lean_protocol():
    assert UVICORN_FLAGS[UVICORN_FLAGS.index("--ws") + 1] == UVICORN_WS
    module, _, name = UVICORN_WS.partition(":")
    assert (module, name) == (
        LeanWebSocketProtocol.__module__,
        LeanWebSocketProtocol.__name__,
    )


async def _echo_app(scope, receive, send):
    """A bare ASGI WebSocket app: accept, then echo text frames back."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    _echo_app.writers.append(socket_writer(send))
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": event["text"]})


@pytest.fixture
async def served():
    _echo_app.writers = []
    server, serving, port = await start_uvicorn(_echo_app, log_level="error")
    assert server.started
    yield server, f"ws://127.0.0.1:{port}/"
    server.should_exit = True
    await asyncio.wait_for(serving, 10)


async def test_after_its_handshake_a_connection_holds_neither_request_nor_response(
    served,
):
    server, url = served
    headers = {"Origin": "http://localhost:8000", "X-Big": "x" * 2000}
    # No permessage-deflate: a compressed socket takes no prepared frames.
    async with connect(url, additional_headers=headers, compression=None) as ws:
        await ws.send("one")
        assert await asyncio.wait_for(ws.recv(), 5) == "one"
        (protocol,) = server.server_state.connections
        assert type(protocol) is LeanWebSocketProtocol
        assert protocol.response is None and protocol.request is None
        assert isinstance(protocol.queue, Inbox)
        assert isinstance(protocol.writable, Flag)
        assert vars(protocol) == {}  # uvicorn's attributes all went to slots
        # The websockets library's parser still holds the request: emptied.
        request = protocol.conn.parser.gi_frame.f_locals["request"]
        assert len(request.headers) == 0
        # The hub's writer takes it for uvicorn's own protocol.
        (writer,) = _echo_app.writers
        assert isinstance(writer, SocketWriter)
        assert writer.write(b"\x81\x03two") is True
        assert await asyncio.wait_for(ws.recv(), 5) == "two"
        for text in ("three", "four" * 1000):  # frames after it still parse
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), 5) == text


async def test_a_send_waits_while_the_client_is_behind_and_fails_once_it_is_gone(
    served,
):
    server, url = served
    async with connect(url, compression=None) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), 5) == "hello"
        (protocol,) = server.server_state.connections
        protocol.pause_writing()  # the transport's buffer is full: uvicorn's call
        sending = asyncio.ensure_future(
            protocol.send({"type": "websocket.send", "text": "later"})
        )
        await asyncio.sleep(0.05)
        assert not sending.done()
        protocol.resume_writing()
        await asyncio.wait_for(sending, 5)
        assert await asyncio.wait_for(ws.recv(), 5) == "later"

        protocol.pause_writing()
        stuck = asyncio.ensure_future(
            protocol.send({"type": "websocket.send", "text": "never"})
        )
        await asyncio.sleep(0.05)
        protocol.transport.abort()  # the client is gone while the send waits
        with pytest.raises(ClientDisconnected):
            await asyncio.wait_for(stuck, 5)
