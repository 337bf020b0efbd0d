"""EnvelopeConsumer: parse once, validate, dispatch through an allow-list, reply.

Every socket endpoint subclasses it and declares the client message types it takes::

    class RoomConsumer(EnvelopeConsumer):
        endpoint = "sessions"
        messages = {"chat.send": ChatSend}      # → async def on_chat_send(...)
        task_messages = frozenset({"query"})     # handlers that wait run as tasks

A client's ``type`` is looked up only in that table (plus ``ping``, ``pong``,
``auth.refresh`` and the declared callback ``replies``), never in Channels' own
dispatch, so a client cannot name ``websocket.disconnect`` or a layer event.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from autobahn.exception import Disconnected as AutobahnDisconnected
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from pydantic import BaseModel, Field

from realtime import metrics
from realtime.auth import MISSING, AuthResult, validate_refresh_token
from realtime.broadcast import FANOUT_EVENT, group_join, group_leave
from realtime.callbacks import CallbackRegistry, CallbackTimeout
from realtime.direct import (
    DaphneWriter,
    SocketWriter,
    prepared_text,
    socket_writer,
    text_frame,
)
from realtime.errors import DomainError, realtime_error
from realtime.heartbeat import Heartbeat, heartbeat_settings
from realtime.hub import fanout_mode
from realtime.presence import ALL, presence_leave, presence_set
from realtime.protocol import (
    VIOLATION_CODES,
    ClientEnvelope,
    CloseCode,
    Forbidden,
    InternalError,
    InvalidMessage,
    MessageTooLarge,
    RateLimited,
    RealtimeError,
    RequestTimeout,
    StrictModel,
    UnknownType,
    decode_frame,
    encode_error,
    encode_frame,
    utc_timestamp,
    validate_payload,
)
from realtime.ratelimit import LocalRateLimiter
from realtime.tokens import MAX_TOKEN_LENGTH

logger = logging.getLogger("realtime.consumer")

VIOLATION_WINDOW = 60.0  # seconds (docs/protocol.md §2)
GROUP_REFRESH_EVERY = 3600.0  # channels-redis forgets group members after a day
CLOSE_WAIT = 5.0  # seconds a client has to take a close frame before it is cut off


# A send to a client that is gone: uvicorn's ClientDisconnected is an OSError,
# daphne's WebSocket protocol (autobahn, installed with daphne) raises its own.
CLIENT_GONE = (OSError, AutobahnDisconnected)


def _event_size(event: dict) -> int:
    """Bytes an event holds (its text, frame or image), for the send-queue bound."""
    sized = (str, bytes, bytearray, memoryview)
    return sum(len(value) for value in event.values() if isinstance(value, sized))


_open_connections = 0


class CloseConnection(Exception):
    """Raised from ``on_connect`` (or a handler) to close the socket with ``code``."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(reason or f"close {code}")
        self.code = int(code)


class PongPayload(StrictModel):
    nonce: str = Field(min_length=1, max_length=64)


class AuthRefreshPayload(StrictModel):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


@dataclass(frozen=True)
class Route:
    handler: str
    model: type[BaseModel] | None
    as_task: bool = False
    reply: bool = False


# auth.refresh costs a trip to the shared database thread: a few per minute suffice.
BASE_THROTTLES: dict[str, tuple[int, float]] = {
    "ping": (10, 1.0),
    "auth.refresh": (3, 10.0),
}

BASE_MESSAGES: dict[str, type[BaseModel] | None] = {
    "ping": None,  # any object, echoed as is: nothing to validate
    "pong": PongPayload,
    "auth.refresh": AuthRefreshPayload,
}


def build_routes(cls: type[EnvelopeConsumer]) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for type_, model in {**BASE_MESSAGES, **cls.messages}.items():
        handler = "on_" + type_.replace(".", "_")
        if not callable(getattr(cls, handler, None)):
            raise TypeError(f"{cls.__name__} declares {type_!r} but has no {handler}")
        routes[type_] = Route(handler, model, as_task=type_ in cls.task_messages)
    for type_, model in cls.replies.items():
        routes[type_] = Route("_on_reply", model, reply=True)
    return routes


class EnvelopeConsumer(AsyncWebsocketConsumer):
    """Base consumer: auth, envelope, errors, violations, heartbeat, tasks, presence."""

    endpoint: ClassVar[str] = "base"
    auth_required: ClassVar[bool] = True
    users_only: ClassVar[bool] = False  # True: scoped (guest) tokens are closed 4005
    accepts_binary: ClassVar[bool] = False
    messages: ClassVar[dict[str, type[BaseModel] | None]] = {}
    task_messages: ClassVar[frozenset[str]] = frozenset()
    replies: ClassVar[dict[str, type[BaseModel] | None]] = {}
    # Per-connection throttles: (count, seconds) per client type, merged over these.
    throttles: ClassVar[dict[str, tuple[int, float]]] = {}
    clock: ClassVar[Callable[[], float]] = staticmethod(time.monotonic)
    _routes: ClassVar[dict[str, Route]] = {}
    _fast_fanout: ClassVar[bool] = True

    # Defaults an instance overrides only when it needs to, and limits read from
    # settings where they are used: a connection's own attributes stay under 30,
    # CPython's limit for keeping them in a compact shared layout (~0.3 KB) rather
    # than a dict of their own (~1.6 KB); bench W2 counts server memory per socket.
    groups: ClassVar[tuple[str, ...]] = ()  # Channels' auto-joined groups: none
    channel_layer: Any = None  # set by Channels' own loop (REALTIME_FANOUT=layer)
    violations: deque[float] | None = None  # made on the first one
    _outbox_bytes = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._routes = build_routes(cls)
        # A subclass with its own realtime_fanout takes the hub's fast path only if it
        # also says, with fanout_ready, when a frame may skip it.
        cls._fast_fanout = (
            cls.realtime_fanout is EnvelopeConsumer.realtime_fanout
            or cls.fanout_ready is not EnvelopeConsumer.fanout_ready
        )

    # ------------------------------------------------------------------ dispatch
    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Read the socket's events in one loop and dispatch each as it comes.

        Channels' own loop (``await_many_dispatch``) races the socket against a
        channel-layer queue, with a new task per received event and a layer
        receive task parked per connection. Group messages come from the hub here,
        not from the layer, so one plain loop does: no task per frame, nothing
        parked per connection. ``REALTIME_FANOUT=layer`` keeps Channels' loop.
        """
        if fanout_mode() == "layer":
            await super().__call__(scope, receive, send)
            return
        self.scope = scope
        self.base_send = send
        self.channel_name = "hub." + secrets.token_hex(8)
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict) -> None:
        # Channels runs aclose_old_connections() (a hop to the database thread) before
        # every handler; database_sync_to_async already closes stale connections
        # around each query, so the hop buys nothing on a socket path that has none.
        if message["type"] == "websocket.receive":  # the hot path: no lookup
            await self.websocket_receive(message)
            return
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None or message["type"].startswith("_"):
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # ------------------------------------------------------------------ lifecycle
    def _init_state(self) -> None:
        self.conn_id = secrets.token_hex(8)
        self.closing = False
        self.started = False
        self.auth: AuthResult = self.scope.get("auth") or MISSING
        self.user = self.auth.user
        self.expires_at = self.auth.expires_at
        self.presence: dict[str, dict[str, Any]] = {}  # room → this socket's info
        self.groups_joined: set[str] = set()
        self.tasks: set[asyncio.Task] = set()
        self.callbacks = CallbackRegistry()
        # Made on a type's first frame: most connections never send most types, and
        # an idle socket should cost little (bench W2 counts kilobytes per socket).
        self.limiters: dict[str, LocalRateLimiter] = {}
        self.heartbeat: Heartbeat | None = None
        self._expiry_timer: asyncio.TimerHandle | None = None
        # The server's connection (realtime.direct), after accept; None: ASGI only.
        self._writer: SocketWriter | DaphneWriter | None = None
        self._sending = 0  # ordinary sends in progress (direct writes wait for none)
        self._outbox: deque[dict] | None = None  # hub events while the client is behind
        self._groups_refreshed = time.monotonic()
        # Hub deliveries wait here until on_connect returns, exactly as channel-layer
        # events wait in the queue, so a greeting or a replay is never overtaken.
        self._held: list[dict] | None = []

    async def websocket_connect(self, message: dict) -> None:
        global _open_connections
        self._init_state()
        # Accept first, then close with a code: a refused handshake shows browsers
        # only an HTTP 403 and loses the reason (docs/protocol.md §2).
        await self.accept()
        self._writer = socket_writer(
            self.base_send, prepared=settings.REALTIME_DIRECT_WRITES
        )
        metrics.connections_total[self.endpoint] += 1
        if _open_connections >= int(settings.REALTIME_MAX_CONNECTIONS):
            await self.close_with(CloseCode.TRY_AGAIN_LATER)
            return
        if self.auth.status == "invalid":
            await self.close_with(CloseCode.INVALID_CREDENTIAL)
            return
        if self.auth.status == "missing" and self.auth_required:
            await self.close_with(CloseCode.NO_CREDENTIAL)
            return
        if self.users_only and not self.user.is_authenticated:
            await self.close_with(CloseCode.FORBIDDEN)
            return
        _open_connections += 1
        metrics.connections_open[self.endpoint] += 1
        self.started = True
        self.presence[ALL] = self.presence_info()
        presence_set(conn_id=self.conn_id, entries=self.presence)
        try:
            await self.on_connect()
        except CloseConnection as exc:
            await self.close_with(exc.code)
        except Exception:
            trace = secrets.token_hex(6)
            logger.exception("on_connect failed trace=%s conn=%s", trace, self.conn_id)
            await self.close_with(CloseCode.INTERNAL)
        await self._release_held()
        if self.closing:
            return
        hb = heartbeat_settings()
        self.heartbeat = Heartbeat(
            send_ping=lambda nonce: self.send_frame("ping", {"nonce": nonce}),
            on_dead=lambda: self.close_with(CloseCode.HEARTBEAT_TIMEOUT),
            on_beat=self._on_beat,
            interval=hb["interval"],
            timeout=hb["timeout"],
            max_missed=int(hb["max_missed"]),
            spawn=self.spawn,
        )
        self.heartbeat.start()
        self._arm_expiry()

    async def websocket_disconnect(self, message: dict) -> None:
        global _open_connections
        if not hasattr(self, "conn_id"):
            raise StopConsumer()
        self.closing = True
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        for task in list(self.tasks):
            task.cancel()
        self.callbacks.cancel_all()
        if self.started:
            self.started = False
            _open_connections -= 1
            metrics.connections_open[self.endpoint] -= 1
            self.on_leaving()
            try:
                presence_leave(conn_id=self.conn_id, rooms=list(self.presence))
            except Exception:  # Redis down: the TTL removes the entries instead
                logger.exception("presence leave failed conn=%s", self.conn_id)
            for group in list(self.groups_joined):
                try:
                    await group_leave(group, self)
                except Exception:  # the rest of the cleanup must still run
                    logger.exception("group leave failed conn=%s", self.conn_id)
            self.groups_joined.clear()
            try:
                await self.on_disconnect(message.get("code"))
            except Exception:
                logger.exception("on_disconnect failed conn=%s", self.conn_id)
        raise StopConsumer()

    async def close_with(self, code: int) -> None:
        """Close the socket with ``code``; frames after this are dropped."""
        if self.closing:
            return
        self.closing = True
        metrics.closes[int(code)] += 1
        logger.info("closing conn=%s code=%s", self.conn_id, int(code))
        await self._send_close(int(code))

    async def _send_close(self, code: int) -> None:
        """The close frame; on uvicorn, the connection is cut if the client never
        takes it: ``send`` waits while the client does not read, and after the frame
        the transport waits to drain, so a stuck client would otherwise keep its
        socket, this consumer, its groups and its presence forever."""
        message = {"type": "websocket.close", "code": code}
        writer = self._writer
        if writer is None or not writer.sends_wait:  # daphne: its own handshake
            await self._write(message)
            return
        try:
            await asyncio.wait_for(self._write(message), CLOSE_WAIT)
        except TimeoutError:
            writer.abort()
            return
        asyncio.get_running_loop().call_later(CLOSE_WAIT, writer.abort)

    # ------------------------------------------------------------------ hooks
    async def on_connect(self) -> None:
        """After accept and auth. Join groups, send the greeting; may raise
        ``CloseConnection``."""

    def on_leaving(self) -> None:
        """Right before the socket leaves presence, with nothing awaited since the
        disconnect: whatever reads presence from now on no longer finds it."""

    async def on_disconnect(self, code: int | None) -> None:
        """After tasks are cancelled and groups left."""

    async def on_binary(self, data: bytes) -> None:
        """A binary frame, on endpoints with ``accepts_binary = True``."""

    def presence_info(self) -> dict[str, Any]:
        user_id = getattr(self.user, "pk", None)
        return {"endpoint": self.endpoint, "user_id": user_id, "rooms": []}

    # ------------------------------------------------------------------ receive
    async def websocket_receive(self, message: dict) -> None:
        if self.closing:
            return
        metrics.frames_in[self.endpoint] += 1
        text = message.get("text")
        if text is None:
            if self.accepts_binary:
                await self._guard(self.on_binary(message.get("bytes") or b""), None)
            else:
                await self.reject(
                    InvalidMessage("binary frames are not accepted on this endpoint")
                )
            return
        limit = int(settings.REALTIME_MAX_TEXT_BYTES)
        # A str of n chars is at most 4n UTF-8 bytes: only long frames are encoded.
        if len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit:
            await self.reject(MessageTooLarge(f"text frame over {limit} bytes"))
            return
        try:
            envelope = decode_frame(text)
        except RealtimeError as exc:
            await self.reject(exc, getattr(exc, "request_id", None))
            return
        route = self._routes.get(envelope.type)
        if route is None:
            await self.reject(
                UnknownType(f"unknown type {envelope.type!r} on this endpoint"),
                envelope.request_id,
            )
            return
        try:
            payload = (
                envelope.payload
                if route.model is None
                else validate_payload(route.model, envelope.payload)
            )
        except InvalidMessage as exc:
            await self.reject(exc, envelope.request_id)
            return
        if self.heartbeat is not None:
            self.heartbeat.alive()
        limiter = self.limiters.get(envelope.type) or self._new_limiter(envelope.type)
        if limiter is not None:
            retry_after = limiter.take()
            if retry_after is not None:
                await self.send_error(
                    RateLimited(
                        f"too many {envelope.type} messages", retry_after=retry_after
                    ),
                    request_id=envelope.request_id,
                )
                return
        if route.as_task and len(self.tasks) >= int(settings.REALTIME_MAX_TASKS):
            # Every waiting handler holds a task (and maybe a callback): bounded.
            await self.send_error(
                RateLimited(f"too many {envelope.type} in progress", retry_after=1.0),
                request_id=envelope.request_id,
            )
            return
        coro = getattr(self, route.handler)(payload, envelope)
        if route.as_task:
            self.spawn(coro, envelope.request_id)
        else:
            await self._guard(coro, envelope.request_id)

    def _new_limiter(self, type_: str) -> LocalRateLimiter | None:
        limits = self.throttles.get(type_) or BASE_THROTTLES.get(type_)
        if limits is None:
            return None
        limiter = self.limiters[type_] = LocalRateLimiter(
            limit=limits[0], window=limits[1]
        )
        return limiter

    async def reject(self, error: RealtimeError, request_id: str | None = None) -> None:
        """Answer a bad frame; count violations and close 4029 past the limit."""
        await self.send_error(error, request_id=request_id)
        if error.code not in VIOLATION_CODES:
            return
        now = self.clock()
        if self.violations is None:
            self.violations = deque()
        self.violations.append(now)
        while self.violations and self.violations[0] <= now - VIOLATION_WINDOW:
            self.violations.popleft()
        if len(self.violations) > int(settings.REALTIME_MAX_VIOLATIONS):
            await self.close_with(CloseCode.TOO_MANY_VIOLATIONS)

    async def _guard(self, coro: Coroutine, request_id: str | None) -> None:
        """Run a handler: a ``RealtimeError`` becomes an error frame, a bug INTERNAL."""
        try:
            await coro
        except RealtimeError as exc:
            await self.send_error(exc, request_id=request_id)
        except DomainError as exc:
            await self.send_error(realtime_error(exc), request_id=request_id)
        except CloseConnection as exc:
            await self.close_with(exc.code)
        except CallbackTimeout:
            pass  # the TIMEOUT error was sent when it happened
        except asyncio.CancelledError:
            raise
        except Exception:
            trace = secrets.token_hex(6)
            logger.exception("handler failed trace=%s conn=%s", trace, self.conn_id)
            await self.send_error(
                InternalError(f"internal error (trace {trace})"), request_id=request_id
            )

    def spawn(self, coro: Coroutine, request_id: str | None = None) -> asyncio.Task:
        """Run ``coro`` as a task owned by this connection (cancelled on disconnect)."""
        task = asyncio.ensure_future(self._guard(coro, request_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        # Cancelled before it ever ran (the socket closed at once): close ``coro``
        # too, or Python warns that it was never awaited. A no-op once it ran.
        task.add_done_callback(lambda _: coro.close())
        return task

    # ------------------------------------------------------------------ sending
    async def _write(self, message: dict) -> None:
        writer = self._writer
        if writer is not None and writer.closed():  # uvicorn's send would raise
            self.closing = True
            return
        self._sending += 1
        try:
            await self.base_send(message)
        except CLIENT_GONE:
            # The client is gone (uvicorn raises ClientDisconnected, daphne autobahn's
            # Disconnected) and its websocket.disconnect is on the way: stop writing,
            # quietly. A storm of departures must not become a storm of logged
            # tracebacks (bench W1 on daphne: thousands per second when a room left).
            self.closing = True
        finally:
            self._sending -= 1

    async def write_broadcast(self, text: str) -> None:
        """A broadcast's frame: framed once per process where the server allows it.

        ``realtime.direct`` writes the shared prepared frame straight to the socket;
        only while no ordinary send of this socket is in progress, so nothing is
        overtaken. Otherwise (and on daphne) the ordinary ``websocket.send``.
        """
        if self.closing or self._write_prepared(text):
            return
        metrics.broadcast_writes["asgi"] += 1
        await self._write({"type": "websocket.send", "text": text})

    def _write_prepared(self, text: str) -> bool:
        """Write ``text`` as a broadcast's shared prepared frame, if it may be."""
        if not self._write_direct(prepared_text(text)):
            return False
        metrics.broadcast_writes["prepared"] += 1
        return True

    def _write_direct(self, frame: bytes) -> bool:
        """Put a frame framed here on the socket (``realtime.direct``), if the server
        allows it and no ordinary send of this socket is in progress (it would be
        overtaken)."""
        writer = self._writer
        return writer is not None and not self._sending and writer.write(frame)

    async def send_text(self, text: str) -> None:
        """One frame of this socket (a reply, an error, a greeting).

        It is framed here and written straight to the socket (``realtime.direct``,
        daphne and uvicorn) when nothing could be overtaken by it: no ordinary send
        in progress, no broadcast queued. That skips the ASGI hop and the server's
        framing, the larger part of answering a ping (bench W3).
        """
        if self.closing:
            return
        if self._outbox is None and self._write_direct(text_frame(text)):
            return  # no broadcast queued ahead of it either
        await self._write({"type": "websocket.send", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        if not self.closing:
            await self._write({"type": "websocket.send", "bytes": data})

    async def send_frame(
        self, type: str, payload: dict, *, request_id: str | None = None
    ) -> None:
        await self.send_text(encode_frame(type, payload, request_id=request_id))

    async def reply(self, envelope: ClientEnvelope, type: str, payload: dict) -> None:
        """Answer ``envelope``, echoing its ``request_id``."""
        await self.send_frame(type, payload, request_id=envelope.request_id)

    async def send_error(
        self, error: RealtimeError, *, request_id: str | None = None
    ) -> None:
        metrics.errors[str(error.code)] += 1
        await self.send_text(encode_error(error, request_id=request_id))

    # ------------------------------------------------------------------ groups
    async def join_group(self, group: str) -> None:
        await group_join(group, self)
        self.groups_joined.add(group)

    async def leave_group(self, group: str) -> None:
        if group in self.groups_joined:
            self.groups_joined.discard(group)
            await group_leave(group, self)

    def enter_room(self, room: str, info: dict[str, Any] | None = None) -> None:
        """Count this connection as present in ``room`` (presence only, no group).

        Entering again with new ``info`` updates it (a nickname change); without, it is
        a no-op.
        """
        if room in self.presence and info is None:
            return
        self.presence[room] = info or self.presence_info()
        self.presence[ALL]["rooms"] = [name for name in self.presence if name != ALL]
        presence_set(
            conn_id=self.conn_id,
            entries={room: self.presence[room], ALL: self.presence[ALL]},
        )

    def deliver_now(self, event: dict) -> bool:
        """The hub's fast path: write a broadcast frame without awaiting, if it can.

        Only a prepared write qualifies (``realtime.direct``), only when nothing is
        held or being sent and the endpoint says the frame is next
        (``fanout_ready``). ``False``: nothing was done, ``hub_deliver`` follows.
        """
        if (
            self._writer is None
            or not self._fast_fanout
            or self._held is not None
            or self._outbox is not None
            or event["type"] != FANOUT_EVENT
            or not self.fanout_ready(event)
        ):
            return False
        if self.closing or event.get("exclude") == self.channel_name:
            return True  # nothing to send
        if not self._write_prepared(event["text"]):
            return False
        self.fanout_done(event)
        return True

    def fanout_ready(self, event: dict) -> bool:
        """May this broadcast frame be written now? (Sessions: the next seq.)"""
        return True

    def fanout_done(self, event: dict) -> None:
        """This broadcast frame was written by ``deliver_now``."""

    async def hub_deliver(self, event: dict) -> None:
        """The hub's direct delivery: the same events the layer would dispatch."""
        if self._held is not None:
            self._held.append(event)
        elif self._outbox is not None or (
            self._writer is not None and self._writer.paused()
        ):
            self._queue(event)
        elif event["type"] == FANOUT_EVENT:  # the hot path: no handler lookup
            await self.realtime_fanout(event)
        else:
            await self.dispatch(event)

    def _queue(self, event: dict) -> None:
        """The client is behind: keep its events, in order, without making the hub wait.

        uvicorn's ``send`` waits while the socket's buffer is full, and the hub
        delivers to one socket after another: one slow client would stall the whole
        room. Its events wait here instead, drained by a task of its own. Past
        ``REALTIME_MAX_QUEUED_BYTES`` the client is not coming back: it is closed with
        4012 (resync with ``since``) and the queue is freed.
        """
        if self.closing:
            return
        if self._outbox is None:
            self._outbox = deque()
            self._outbox_bytes = 0
            self.spawn(self._drain(self._outbox))
        self._outbox.append(event)
        self._outbox_bytes += _event_size(event)
        metrics.broadcast_writes["queued"] += 1
        if self._outbox_bytes > int(settings.REALTIME_MAX_QUEUED_BYTES):
            self._outbox.clear()
            self.closing = True
            metrics.closes[int(CloseCode.GOING_AWAY)] += 1
            logger.warning("client too far behind: closing conn=%s 4012", self.conn_id)
            self.spawn(self._send_close(int(CloseCode.GOING_AWAY)))

    async def _drain(self, outbox: deque[dict]) -> None:
        try:
            while outbox:
                event = outbox.popleft()
                self._outbox_bytes -= _event_size(event)
                if event["type"] == FANOUT_EVENT:
                    await self.realtime_fanout(event)
                else:
                    await self.dispatch(event)
        finally:
            if self._outbox is outbox:
                self._outbox = None

    async def _release_held(self) -> None:
        held = self._held
        while held:  # deliveries arriving meanwhile join the end of the line
            await self.dispatch(held.pop(0))
        self._held = None

    async def realtime_fanout(self, event: dict) -> None:
        """A prepared frame from ``realtime.broadcast``: hand it to the socket."""
        if event.get("exclude") != self.channel_name:
            await self.write_broadcast(event["text"])

    async def realtime_close(self, event: dict) -> None:
        if event.get("exclude") != self.channel_name:
            await self.close_with(event["code"])

    # ------------------------------------------------------------------ callbacks
    async def request_client(
        self,
        type: str,
        payload: dict,
        *,
        expects: set[str],
        timeout: float | None = None,
    ) -> Any:
        """Ask the client (server → client request); the reply's validated payload.

        On timeout the client gets ``error TIMEOUT`` for that ``request_id`` and the
        caller gets ``CallbackTimeout``.
        """
        timeout = float(settings.CALLBACK_TIMEOUT if timeout is None else timeout)

        async def send(request_id: str) -> None:
            await self.send_frame(type, payload, request_id=request_id)

        try:
            return await self.callbacks.call(send, expects, timeout)
        except CallbackTimeout as exc:
            await self.send_error(
                RequestTimeout(f"{type} was not answered within {timeout:g} s"),
                request_id=exc.request_id,
            )
            raise

    async def _on_reply(self, payload: Any, envelope: ClientEnvelope) -> None:
        self.callbacks.resolve(envelope.request_id, envelope.type, payload)

    # ------------------------------------------------------------------ common types
    async def on_ping(self, payload: Any, envelope: ClientEnvelope) -> None:
        await self.reply(envelope, "pong", envelope.payload)

    async def on_pong(self, payload: PongPayload, envelope: ClientEnvelope) -> None:
        if self.heartbeat is not None:
            self.heartbeat.pong(payload.nonce)

    async def on_auth_refresh(
        self, payload: AuthRefreshPayload, envelope: ClientEnvelope
    ) -> None:
        result = await database_sync_to_async(validate_refresh_token)(payload.token)
        if not result.ok:
            raise InvalidMessage("payload.token: invalid or expired token")
        same_user = getattr(result.user, "pk", None) == getattr(self.user, "pk", None)
        same_claims = all(
            result.claims.get(key) == value
            for key, value in self.auth.claims.items()
            if key != "exp"
        )
        if not (same_user and same_claims):
            raise Forbidden("the new token belongs to someone else")
        self.expires_at = result.expires_at
        expires = None
        if result.expires_at is not None:
            expires = utc_timestamp(datetime.fromtimestamp(result.expires_at, UTC))
        await self.reply(envelope, "auth.refreshed", {"expires_at": expires})

    # ------------------------------------------------------------------ internals
    async def _on_beat(self) -> None:
        presence_set(conn_id=self.conn_id, entries=self.presence)
        now = time.monotonic()
        if now - self._groups_refreshed > GROUP_REFRESH_EVERY:
            self._groups_refreshed = now
            for group in self.groups_joined:
                await group_join(group, self)

    def _arm_expiry(self) -> None:
        """Close 4001 when the credential expires (a timer, not a sleeping task).

        ``auth.refresh`` only moves ``expires_at``: the timer finds it later and waits
        again.
        """
        self._expiry_timer = None
        if self.expires_at is None or self.closing:
            return
        delay = self.expires_at - time.time()
        if delay > 0:
            loop = asyncio.get_running_loop()
            self._expiry_timer = loop.call_later(min(delay, 3600.0), self._arm_expiry)
            return
        logger.info("credential expired conn=%s", self.conn_id)
        self.spawn(self.close_with(CloseCode.INVALID_CREDENTIAL))


EnvelopeConsumer._routes = build_routes(EnvelopeConsumer)


class NotFoundConsumer(EnvelopeConsumer):
    """Any socket path no endpoint serves: accepted, then closed with 4004."""

    endpoint = "not_found"
    auth_required = False

    async def on_connect(self) -> None:
        raise CloseConnection(CloseCode.NOT_FOUND)
