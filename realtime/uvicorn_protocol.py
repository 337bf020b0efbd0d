"""uvicorn's WebSocket protocol (websockets-sansio) holding less per connection.

Every server command of the project runs uvicorn with it (``--ws`` names
``UVICORN_WS`` in realtime/listening.py). It is uvicorn's own protocol, unchanged on
the wire, with four of its per-connection objects made smaller (measured with
tracemalloc on 2,000 idle sockets, docs/performance.md):

* the queue of ASGI events for the application's ``receive``: an ``asyncio.Queue``
  is four objects with a ``deque`` each (~3 KB); uvicorn uses ``put_nowait``, ``get``
  and ``empty`` of it, and has one reader;
* ``writable``, the flag ``send`` waits on while the client is behind: an
  ``asyncio.Event`` keeps a ``deque`` of waiters even when nobody waits (~0.8 KB);
* the instance's attributes: 37 of them, a dict of 1.6 KB (now slots);
* the handshake's request and response (their headers, ~4 KB) are kept for the life
  of the connection (the response by uvicorn; the request by uvicorn and by the
  websockets library's parser, a generator that holds it in a local), and neither
  is read after the handshake is answered: the response is let go and the
  request's headers emptied (``Headers.clear``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)


class Inbox:
    """The ASGI events waiting for ``receive``: ``asyncio.Queue``'s ``put_nowait``,
    ``get`` and ``empty``, for one reader, unbounded (as uvicorn's).

    Usually one event or none; but uvicorn queues every frame of one read before it
    pauses reading, so a burst of tiny frames can queue thousands: they are read by
    an index into the list (no ``pop(0)`` moving the rest), emptied once all read.
    """

    __slots__ = ("items", "head", "waiter")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.head = 0  # the next item to read
        self.waiter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while self.empty():
            if self.waiter is not None and not self.waiter.done():
                raise RuntimeError("Inbox has one reader")
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self.waiter is waiter:
                    self.waiter = None
        items, head = self.items, self.head
        item, items[head] = items[head], None
        if head + 1 == len(items):
            items.clear()
            self.head = 0
        else:
            self.head = head + 1
        return item

    def empty(self) -> bool:
        return self.head == len(self.items)

    def qsize(self) -> int:
        return len(self.items) - self.head


class Flag:
    """``asyncio.Event``'s ``set``, ``clear``, ``is_set`` and ``wait``, with no
    waiter list until somebody waits."""

    __slots__ = ("value", "waiters")

    def __init__(self, value: bool = False) -> None:
        self.value = value
        self.waiters: list[asyncio.Future] | None = None

    def is_set(self) -> bool:
        return self.value

    def set(self) -> None:
        if self.value:
            return
        self.value = True
        waiters, self.waiters = self.waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self.value = False

    async def wait(self) -> bool:
        if self.value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self.waiters is None:
            self.waiters = []
        self.waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self.waiters is not None and waiter in self.waiters:
                self.waiters.remove(waiter)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with a smaller queue and flag, its
    attributes in slots, and the handshake's request and response let go once the
    handshake is answered."""

    # uvicorn's own attributes (0.54), in slots rather than the instance's dict: 37
    # of them made a 1.6 KB dict per connection, past the 30 keys CPython shares
    # between a class's instances. An attribute a later uvicorn adds goes to the
    # dict, as before. (A slot hides a class attribute of the same name: uvicorn's
    # class has none, tests/realtime/test_uvicorn_protocol.py checks it.)
    __slots__ = (
        *("config", "app", "loop", "logger", "root_path", "asgi_version"),
        *("app_state", "connections", "tasks", "default_headers", "transport"),
        *("server", "client", "scheme", "queue", "handshake_initiated"),
        *("handshake_complete", "close_sent", "disconnected", "close_timer"),
        *("close_timeout", "initial_response", "conn", "read_paused", "writable"),
        *("ping_interval", "ping_timeout", "ping_timer", "pong_timer"),
        *("pending_ping_payload", "ping_sent_at", "last_ping_rtt", "frames"),
        *("curr_msg_data_type", "request", "response", "scope"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]

    def start_keepalive(self) -> None:
        # uvicorn calls this once, right after it wrote the handshake's answer: the
        # request and response were read to make it (handle_connect, send) and
        # are not read again. (No wrapper around ``send``: it is on every frame.)
        request = getattr(self, "request", None)
        if request is not None:
            request.headers.clear()  # the parser's generator still holds the request
        self.request = self.response = None
        super().start_keepalive()
