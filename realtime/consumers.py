"""EnvelopeConsumer: a socket's lifecycle and its endpoint's handler tables.

Every socket endpoint subclasses it and declares what it takes (docs/toolkit.md)::

    class RoomConsumer(EnvelopeConsumer):
        endpoint = "rooms"
        messages = {"chat.send": ChatSend}      # → async def on_chat_send(...)
        task_messages = frozenset({"query"})     # handlers that wait run as tasks
        events = frozenset({"room.moved"})       # hub events → event_room_moved

A client's ``type`` is looked up only in its table (with ``ping``, ``pong``,
``auth.refresh``, callback ``replies``), hub events only in theirs: a client never
names an event or ``websocket.*``. It composes ``inbound``, ``outbox``, ``handling``,
``connection`` (docs/toolkit.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from pydantic import BaseModel

from realtime import clock, conf, logcontext, metrics, recent
from realtime.auth import MISSING as MISSING_AUTH
from realtime.broadcast import CLOSE_EVENT
from realtime.connection import CommonMessages, admission_refusal, connections
from realtime.daphne_reads import read_directly
from realtime.direct import socket_writer
from realtime.errors import Unavailable
from realtime.handling import (
    CloseConnection,
    code_name,
    event_handler,
    guard,
    spawn_task,
)
from realtime.hub import fanout_mode
from realtime.inbound import Inbound, build_routes
from realtime.outbox import Outbox
from realtime.presence import ALL, apresence_set
from realtime.protocol import (
    VIOLATION_CODES,
    CloseCode,
    InvalidMessage,
    RealtimeError,
    UnknownType,
    encode_error,
    encode_frame,
)

logger = logging.getLogger("realtime.consumer")


class EnvelopeConsumer(CommonMessages, AsyncWebsocketConsumer):
    """Base consumer: admission, the receive loop, handler tables, tasks, cleanup."""

    endpoint: ClassVar[str] = "base"
    auth_required: ClassVar[bool] = True
    users_only: ClassVar[bool] = False  # True: scoped (guest) tokens are closed 4005
    accepts_binary: ClassVar[bool] = False
    messages: ClassVar[dict[str, type[BaseModel] | None]] = {}
    task_messages: ClassVar[frozenset[str]] = frozenset()
    replies: ClassVar[dict[str, type[BaseModel] | None]] = {}
    events: ClassVar[frozenset[str]] = frozenset()  # hub events → event_<name>
    sends: ClassVar[dict[str, type[BaseModel] | dict]] = {}  # S→C types (AsyncAPI)
    throttle_setting: ClassVar[str] = ""  # its rates' knob, over REALTIME_THROTTLES
    inbound: ClassVar[Inbound]
    meters: ClassVar[metrics.EndpointMeters]  # this endpoint's, bound once

    # Class defaults: a connection's own attributes stay under CPython's 30 for a
    # compact shared layout (~0.3 KB, not a ~1.6 KB dict; bench W2 counts it).
    groups: ClassVar[tuple[str, ...]] = ()  # Channels' auto-joined groups: none
    channel_layer: Any = None  # set by Channels' own loop (REALTIME_FANOUT=layer)
    close_code: int | None = None  # the code this side closed with, if it did
    started = False
    _groups_refreshed = 0.0

    @property
    def closing(self) -> bool:
        """Closed or closing: nothing more is sent (the outbox's own state)."""
        return self.outbox.closing

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._build_tables()

    @classmethod
    def _build_tables(cls) -> None:
        messages = {**CommonMessages.common_messages, **cls.messages}
        routes = build_routes(cls, messages, cls.task_messages, cls.replies)
        cls.inbound = Inbound(routes, cls.throttle_setting)
        cls.meters = metrics.endpoint_meters(cls.endpoint)
        for event in cls.events:
            if not callable(getattr(cls, event_handler(event), None)):
                raise TypeError(f"{cls.__name__} takes {event!r} but has no handler")

    # ------------------------------------------------------------------ the loop
    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Read the socket's events in one loop and dispatch each as it comes.

        Channels' own loop (``await_many_dispatch``) races the socket against a
        channel-layer queue, with a new task per received event and a layer
        receive task parked per connection. Group messages come from the hub here,
        so one plain loop does. ``REALTIME_FANOUT=layer`` keeps Channels' loop.
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
        """The server's three socket events; under Channels' loop, layer events too,
        which go where the hub's go. Channels' own ``dispatch`` would look any type
        up as a method and hop to the database thread first: neither is wanted."""
        type_ = message["type"]
        if type_ == "websocket.receive":  # the hot path: no lookup
            await self.websocket_receive(message)
        elif type_ == "websocket.connect":
            await self.websocket_connect(message)
        elif type_ == "websocket.disconnect":
            await self.websocket_disconnect(message)
        else:
            await self.outbox.hub_deliver(message)

    async def _on_hub_event(self, event: dict) -> None:
        """A hub event the outbox hands over: the toolkit's own, or the table's."""
        if event.get("exclude") == self.channel_name:
            return
        type_ = event["type"]
        if type_ == CLOSE_EVENT:
            await self.close_with(event["code"])
        elif type_ in self.events:
            await getattr(self, event_handler(type_))(event)
        else:
            logger.warning(
                "no handler for hub event %r conn=%s",
                type_,
                self.conn_id,
                extra=self.log_context(),
            )

    # ------------------------------------------------------------------ lifecycle
    def _init_state(self) -> None:
        """A new connection's own state (scope, base_send and channel_name set)."""
        self.conn_id = secrets.token_hex(8)
        # Set now, not when the heartbeat starts: measured, a late new attribute made
        # every socket's __dict__ a table of its own (832 B, not 240 shared).
        self.heartbeat = self._expiry = None
        self.auth = self.scope.get("auth") or MISSING_AUTH
        self.user = self.auth.user
        self.expires_at = self.auth.expires_at
        self.presence: dict[str, dict[str, Any]] = {}  # room → this socket's info
        self.groups_joined: set[str] = set()
        self.tasks: dict[asyncio.Task, None] = {}  # spawn_task's
        self.limiters: dict = {}  # throttles per type and the violation budget
        self.outbox = Outbox(
            self.base_send,
            channel_name=self.channel_name,
            on_event=self._on_hub_event,
            spawn=self.spawn,
            fill=self.fill_gap,
            conn_id=self.conn_id,
            groups=self.groups_joined,
        )
        self.start_connection()

    def log_context(self) -> dict[str, Any]:
        """This socket's log fields: its trace id is its connection id."""
        user_id = getattr(self.user, "pk", None)
        return {"trace_id": self.conn_id, "user_id": user_id, "endpoint": self.endpoint}

    async def websocket_connect(self, message: dict) -> None:
        self._init_state()
        logcontext.bind(**self.log_context())
        # Accept, then close with a code: a refused handshake is a bare 403 (§2).
        await self.accept()
        self.outbox.writer = socket_writer(
            self.base_send, prepared=bool(conf.get("REALTIME_DIRECT_WRITES"))
        )
        if conf.get("REALTIME_DIRECT_READS"):
            read_directly(self.base_send)
        self.meters.accepted()
        refusal = admission_refusal(self)
        if refusal is not None:
            await self.close_with(refusal)
            return
        connections.opened(self.endpoint)
        self.started = True
        self._groups_refreshed = clock.monotonic()
        self.presence[ALL] = self.presence_info()
        try:
            await apresence_set(conn_id=self.conn_id, entries=self.presence)
            await self.on_connect()
        except CloseConnection as exc:
            await self.close_with(exc.code)
        except Unavailable:  # a code the client retries (docs/protocol.md §2)
            logger.warning(
                "connect unavailable conn=%s", self.conn_id, extra=self.log_context()
            )
            await self.close_with(CloseCode.INTERNAL)
        except Exception:
            logger.exception(
                "on_connect failed conn=%s", self.conn_id, extra=self.log_context()
            )
            await self.close_with(CloseCode.INTERNAL)
        self.forget_headers()
        await self.outbox.release_held()
        if not self.closing:
            self.start_liveness()

    async def websocket_disconnect(self, message: dict) -> None:
        if not hasattr(self, "conn_id"):
            raise StopConsumer()
        code = self.close_code if self.close_code is not None else message.get("code")
        self.meters.closed(code)
        logger.info(
            "socket closed conn=%s code=%s",
            self.conn_id,
            code,
            extra={**self.log_context(), "close_code": code},
        )
        self.outbox.stop()
        self.stop_connection()
        for task in list(self.tasks):
            task.cancel()
        if self.started:
            self.started = False
            connections.closed(self.endpoint)
            self.on_leaving()
            await self.leave_everything()
            try:
                await self.on_disconnect(message.get("code"))
            except Exception:
                logger.exception("on_disconnect failed conn=%s", self.conn_id)
        raise StopConsumer()

    async def close_with(self, code: int) -> None:
        """Close the socket with ``code``; frames after this are dropped."""
        if self.closing:
            return
        self.outbox.closing = True
        self.close_code = int(code)
        metrics.close_sent(code)
        recent.record_close(self, int(code), code_name(int(code)))
        logger.info(
            "closing conn=%s code=%s",
            self.conn_id,
            int(code),
            extra={**self.log_context(), "close_code": int(code)},
        )
        await self.outbox.close(int(code))

    # ------------------------------------------------------------------ hooks
    async def on_connect(self) -> None:
        """After accept and admission: join groups, send the greeting, replay; may
        raise ``CloseConnection``. Hub events wait until it returns."""

    def on_leaving(self) -> None:
        """Right before the socket leaves presence, with nothing awaited since the
        disconnect: whatever reads presence from now on no longer finds it."""

    async def on_disconnect(self, code: int | None) -> None:
        """After tasks are cancelled and groups left."""

    async def on_binary(self, data: bytes) -> None:
        """A binary frame, on endpoints with ``accepts_binary = True``."""

    async def fill_gap(
        self, stream: str, after: int, upto: int
    ) -> Iterable[tuple[int, str]]:
        """Stored frames ``(seq, text)`` of ``stream`` with ``after < seq <= upto``,
        for ordered delivery (``order_stream``) when a seq did not arrive in time."""
        return ()

    # ------------------------------------------------------------------ receive
    async def websocket_receive(self, message: dict) -> None:
        if self.closing:
            return
        text = message.get("text")
        if text is None:
            self.meters.received("binary").inc()
            if self.accepts_binary:
                await self._guard(self.on_binary(message.get("bytes") or b""), None)
            else:
                await self.reject(
                    InvalidMessage("binary frames are not accepted on this endpoint")
                )
            return
        inbound = self.inbound
        meters = self.meters
        try:
            route, envelope, payload = inbound.read(text)
        except RealtimeError as exc:
            unknown = isinstance(exc, UnknownType)
            meters.received("unknown" if unknown else "invalid").inc()
            await self.reject(exc, getattr(exc, "request_id", None))
            return
        type_ = envelope.type
        meters.received(type_).inc()
        self.heard()
        refused = inbound.refusal(self.limiters, route, type_, len(self.tasks))
        if refused is not None:
            meters.rate_limited(type_).inc()
            await self.send_error(refused, request_id=envelope.request_id)
            return
        coro = getattr(self, route.handler)(payload, envelope)
        if route.as_task:
            self.spawn(coro, envelope.request_id, timer=meters.handler(type_))
        else:
            await self._guard(coro, envelope.request_id, meters.handler(type_))

    async def reject(self, error: RealtimeError, request_id: str | None = None) -> None:
        """Answer a bad frame; count violations and close 4029 past the limit."""
        await self.send_error(error, request_id=request_id)
        if error.code in VIOLATION_CODES and self.inbound.violated(self.limiters):
            await self.close_with(CloseCode.TOO_MANY_VIOLATIONS)

    async def _guard(
        self, coro: Coroutine, request_id: str | None, timer: Any = None
    ) -> None:
        """Run a handler; its refusal or failure becomes the answer
        (``realtime.handling.guard``)."""
        await guard(self, coro, request_id, timer)

    def spawn(
        self, coro: Coroutine, request_id: str | None = None, *, timer: Any = None
    ) -> asyncio.Task:
        """Run ``coro`` as a task owned by this connection (cancelled on disconnect);
        ``timer``, a histogram child, observes how long it took."""
        task = spawn_task(self._guard(coro, request_id, timer), self.tasks)
        # Cancelled before it ran: close ``coro`` (else "never awaited"); no-op after.
        task.add_done_callback(lambda _: coro.close())
        return task

    # ------------------------------------------------------------------ sending
    async def send_text(self, text: str) -> None:
        await self.outbox.send_text(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.outbox.send_bytes(data)

    def send_frame_now(
        self, type: str, payload: dict, *, request_id: str | None = None
    ) -> Coroutine | None:
        """``send_frame`` without awaiting where it can: None once the frame is on
        the socket (or dropped, the socket closing), else the coroutine that sends
        it (the heartbeat's ping makes no task when the socket takes it at once)."""
        if self.outbox.closing:
            return None
        self.meters.sent(type).inc()
        text = encode_frame(type, payload, request_id=request_id)
        return None if self.outbox.send_text_now(text) else self.outbox.send_text(text)

    async def send_frame(
        self, type: str, payload: dict, *, request_id: str | None = None
    ) -> None:
        sending = self.send_frame_now(type, payload, request_id=request_id)
        if sending is not None:
            await sending

    async def reply(self, envelope: Any, type: str, payload: dict) -> None:
        """Answer ``envelope``, echoing its ``request_id``."""
        await self.send_frame(type, payload, request_id=envelope.request_id)

    async def send_error(
        self, error: RealtimeError, *, request_id: str | None = None
    ) -> None:
        metrics.error_sent(str(error.code))
        recent.record_error(self, str(error.code), error.message[:120])
        self.meters.sent("error").inc()
        await self.outbox.send_text(encode_error(error, request_id=request_id))


EnvelopeConsumer._build_tables()


class NotFoundConsumer(EnvelopeConsumer):
    """Any socket path no endpoint serves: accepted, then closed with 4004."""

    endpoint = "not_found"
    auth_required = False

    async def on_connect(self) -> None:
        raise CloseConnection(CloseCode.NOT_FOUND)
