"""One socket's outbound path: replies, broadcasts, held and queued hub events, close.

The hub talks to the ``Outbox`` (it is the hub's ``Member``): ``deliver_now`` writes a
broadcast's prepared frame without awaiting when nothing could be overtaken, and
``hub_deliver`` takes every other event. Events wait (``held``) until the endpoint's
``on_connect`` has returned, so a greeting or a replay is never overtaken; while the
client is behind they are queued in order and drained by a task of their own, so one
slow client never holds up the hub; past ``REALTIME_MAX_QUEUED_BYTES`` it is closed
4012. Stored frames with a ``seq`` go out in seq order, once, per stream
(``realtime.sequenced``, on ``realtime.ordering``), holes filled from storage by the
endpoint's ``fill`` hook.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable

from autobahn.exception import Disconnected as AutobahnDisconnected

from realtime import conf, metrics
from realtime.broadcast import FANOUT_EVENT
from realtime.direct import DaphneWriter, SocketWriter, prepared_text, text_frame
from realtime.ordering import SeqOrder
from realtime.protocol import CloseCode
from realtime.sequenced import OrderedStreams

logger = logging.getLogger("realtime.outbox")

# A send to a client that is gone: uvicorn's ClientDisconnected is an OSError,
# daphne's WebSocket protocol (autobahn, installed with daphne) raises its own.
CLIENT_GONE = (OSError, AutobahnDisconnected)

DRAIN_POLL = 0.05  # seconds between looks at a daphne client's backlog while queued

Fill = Callable[[str, int, int], Awaitable[Iterable[tuple[int, str]]]]


def event_size(event: dict) -> int:
    """Bytes an event holds (its text, frame or image), for the send-queue bound."""
    sized = (str, bytes, bytearray, memoryview)
    return sum(len(value) for value in event.values() if isinstance(value, sized))


class Outbox(OrderedStreams):
    """Everything one socket sends, in order; what the hub talks to."""

    __slots__ = (
        "channel_name",
        "send",
        "on_event",
        "spawn",
        "fill",
        "conn_id",
        "writer",
        "closing",
        "sending",
        "held",
        "queue",
        "queued_bytes",
        "orders",
        "holding",
        "released",
        "filling",
        "groups",
        "gap_timer",
    )

    def __init__(
        self,
        send: Callable[[dict], Awaitable[None]],
        *,
        channel_name: str,
        on_event: Callable[[dict], Awaitable[None]],
        spawn: Callable[[Coroutine], asyncio.Task],
        fill: Fill | None = None,
        conn_id: str = "",
        groups: set[str] | None = None,
    ) -> None:
        self.channel_name = channel_name
        self.send = send  # the server's ASGI send
        self.on_event = on_event  # the endpoint's hub-event table
        self.spawn = spawn  # the connection's: its tasks go with it
        self.fill = fill
        self.conn_id = conn_id
        # The server's connection (realtime.direct), after accept; None: ASGI only.
        self.writer: SocketWriter | DaphneWriter | None = None
        self.closing = False
        self.sending = 0  # ordinary sends in progress (direct writes wait for none)
        self.held: list[dict] | None = []  # hub events until on_connect returns
        self.queue: deque[dict] | None = None  # hub events while the client is behind
        self.queued_bytes = 0
        self.orders: dict[str, SeqOrder[str]] | None = None  # stream -> seq order
        # stream -> its stored frames, kept until the stream's order starts
        self.holding: dict[str, list[tuple[int, str]]] | None = None
        # Frames an order released outside a hub delivery (a fill, a held stream's
        # start): written, in release order, before anything still queued.
        self.released: deque[str] | None = None
        self.filling = False  # one storage read at a time
        # The groups the socket is in (its consumer's set): a queued broadcast of a
        # group it has left since (a member removed) is not written.
        self.groups = groups
        self.gap_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ writing
    async def write(self, message: dict) -> None:
        """One ASGI message to the server; a client already gone ends the writing."""
        writer = self.writer
        if writer is not None and writer.closed():  # uvicorn's send would raise
            self.closing = True
            return
        self.sending += 1
        try:
            await self.send(message)
        except CLIENT_GONE:
            # Its websocket.disconnect is on the way: stop writing, quietly. A storm
            # of departures must not become a storm of logged tracebacks (bench W1 on
            # daphne: thousands per second when a room left).
            self.closing = True
        finally:
            self.sending -= 1

    def write_direct(self, frame: bytes) -> bool:
        """Put a frame framed here on the socket (``realtime.direct``), if the server
        allows it and no ordinary send is in progress (it would be overtaken)."""
        writer = self.writer
        return writer is not None and not self.sending and writer.write(frame)

    def _write_prepared(self, text: str) -> bool:
        if not self.write_direct(prepared_text(text)):
            return False
        metrics.broadcast_writes.prepared += 1
        return True

    async def send_text(self, text: str) -> None:
        """One frame of this socket (a reply, an error, a greeting).

        Framed here and written straight to the socket when nothing could be
        overtaken by it (no send in progress, no broadcast queued): that skips the
        ASGI hop and the server's framing, the larger part of answering a ping.
        """
        if self.closing or self.send_text_now(text):
            return
        await self.write({"type": "websocket.send", "text": text})

    def send_text_now(self, text: str) -> bool:
        """``send_text`` without awaiting: True if the frame is on the socket, False
        if it needs ``send_text`` (nothing is written then)."""
        return (
            not self.closing
            and self.queue is None
            and self.write_direct(text_frame(text))
        )

    async def send_bytes(self, data: bytes) -> None:
        if not self.closing:
            await self.write({"type": "websocket.send", "bytes": data})

    async def write_broadcast(self, text: str) -> None:
        """A broadcast's frame: the shared prepared frame where the server allows it
        (framed once per process), else the ordinary ``websocket.send``."""
        if self.closing or self._write_prepared(text):
            return
        metrics.broadcast_writes.asgi += 1
        await self.write({"type": "websocket.send", "text": text})

    async def close(self, code: int) -> None:
        """The close frame; on uvicorn the connection is cut if the client never takes
        it: ``send`` waits while the client does not read, so a stuck client would
        otherwise keep its socket, consumer, groups and presence forever."""
        message = {"type": "websocket.close", "code": code}
        writer = self.writer
        if writer is None or not writer.sends_wait:  # daphne: its own handshake
            await self.write(message)
            return
        wait = float(conf.get("REALTIME_CLOSE_WAIT"))
        try:
            await asyncio.wait_for(self.write(message), wait)
        except TimeoutError:
            writer.abort()
            return
        asyncio.get_running_loop().call_later(wait, writer.abort)

    # ------------------------------------------------------------------ the hub
    def deliver_now(self, event: dict) -> bool:
        """The hub's fast path: write a broadcast without awaiting, if it can.

        Only a prepared write qualifies, only with nothing held, queued or being
        sent, and for a stored frame only when it is its stream's next seq.
        ``False``: nothing was done, ``hub_deliver`` follows.
        """
        if (
            self.writer is None
            or self.held is not None
            or self.queue is not None
            or event["type"] != FANOUT_EVENT
        ):
            return False
        if self.closing or event.get("exclude") == self.channel_name:
            return True  # nothing to send
        seq = event.get("seq")
        if seq is not None and self.holding and event.get("stream") in self.holding:
            return False
        order = (
            None
            if seq is None or self.orders is None
            else self.orders.get(event.get("stream"))
        )
        if order is not None and not order.ready(seq):
            return False
        if not self._write_prepared(event["text"]):
            return False
        if order is not None:
            order.done(seq)
        return True

    async def hub_deliver(self, event: dict) -> None:
        """Every hub event the fast path did not take, in arrival order."""
        if self.held is not None:
            self.held.append(event)
        elif (
            self.queue is not None
            or self.sending
            or (self.writer is not None and self.writer.paused())
        ):
            self._enqueue(event)
        else:
            await self._deliver(event)

    async def release_held(self) -> None:
        """``on_connect`` returned: deliver what waited, then deliver as it comes."""
        held = self.held
        while held:  # deliveries arriving meanwhile join the end of the line
            event = held.pop(0)
            try:
                await self._deliver(event)
            except Exception:  # one bad event must not lose the socket's cleanup
                logger.exception("held event failed conn=%s", self.conn_id)
        self.held = None

    async def _deliver(self, event: dict) -> None:
        if event["type"] != FANOUT_EVENT:
            await self.on_event(event)
        elif event.get("exclude") != self.channel_name:
            group = event.get("group")
            if (
                group is not None
                and self.groups is not None
                and group not in self.groups
            ):
                return  # left (removed) while this waited in the queue
            seq, stream = event.get("seq"), event.get("stream")
            if seq is None:
                await self.write_broadcast(event["text"])
            elif self.holding and stream in self.holding:
                self.holding[stream].append((seq, event["text"]))
            elif self.orders is None or stream not in self.orders:
                await self.write_broadcast(event["text"])
            else:
                await self._offer(stream, seq, event["text"])

    def _enqueue(self, event: dict) -> None:
        """The client is behind: keep its events, in order, without making the hub
        wait; past ``REALTIME_MAX_QUEUED_BYTES`` it is not coming back: 4012 (it
        resyncs with ``since``) and the queue is freed."""
        if self.closing:
            return
        if self.queue is None:
            self.queue = deque()
            self.queued_bytes = 0
            self.spawn(self._drain(self.queue))
        self.queue.append(event)
        self.queued_bytes += event_size(event)
        metrics.broadcast_writes.queued += 1
        if self.queued_bytes > int(conf.get("REALTIME_MAX_QUEUED_BYTES")):
            self.queue.clear()
            self.closing = True
            metrics.close_sent(CloseCode.GOING_AWAY)
            # Logged from the hub's delivery (another task): its own trace, named.
            logger.warning(
                "client too far behind: closing conn=%s 4012",
                self.conn_id,
                extra={"trace_id": self.conn_id, "close_code": 4012},
            )
            self.spawn(self.close(int(CloseCode.GOING_AWAY)))

    async def _drain(self, queue: deque[dict]) -> None:
        writer = self.writer
        try:
            while queue or self.released:
                if writer is not None and not writer.sends_wait:
                    # daphne's sends never wait: hand it nothing more while Twisted
                    # still holds the client's backlog, or the queue's bound would
                    # never be reached and Twisted's buffer would grow instead.
                    while writer.paused() and not self.closing:  # noqa: ASYNC110
                        await asyncio.sleep(DRAIN_POLL)  # Twisted signals no drain
                if self.released:  # released by an order: before what is queued
                    text = self.released.popleft()
                    self.queued_bytes -= len(text)
                    await self.write_broadcast(text)
                    continue
                event = queue.popleft()
                self.queued_bytes -= event_size(event)
                await self._deliver(event)
        finally:
            if self.queue is queue:
                self.queue = None

    def _write_first(self, texts: list[str]) -> None:
        """Frames an order released outside a hub delivery (a fill, a held stream's
        start): written in the order released, before anything still queued (what
        is queued was not offered yet), by the queue's drain."""
        if not texts or self.closing:
            return
        if self.released is None:
            self.released = deque()
        self.released.extend(texts)
        if self.queue is None:
            self.queue = deque()
            self.queued_bytes = 0
            self.spawn(self._drain(self.queue))
        self.queued_bytes += sum(len(text) for text in texts)
