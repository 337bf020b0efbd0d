"""What every socket has besides its endpoint's own types.

Admission (who may stay after the handshake), liveness (the heartbeat and the
credential's expiry), presence in rooms, server → client requests answered by
``request_id``, and PROTOCOL §4's types (``ping``, ``pong``, ``auth.refresh``).
``CommonMessages`` is mixed into ``EnvelopeConsumer``; endpoints use it through that.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from realtime import clock, conf, metrics, recent
from realtime.auth import validate_refresh_token
from realtime.broadcast import group_join, group_leave
from realtime.callbacks import CallbackRegistry, CallbackTimeout
from realtime.dbthread import to_database_thread
from realtime.errors import Unavailable
from realtime.heartbeat import Deadline, Heartbeat, heartbeat_settings
from realtime.presence import ALL, apresence_leave, apresence_post, apresence_set
from realtime.protocol import (
    ClientEnvelope,
    CloseCode,
    Forbidden,
    InvalidMessage,
    RequestTimeout,
    StrictModel,
    utc_timestamp,
)
from realtime.tokens import MAX_TOKEN_LENGTH

logger = logging.getLogger("realtime.consumer")


class PongPayload(StrictModel):
    nonce: str = Field(min_length=1, max_length=64)


class AuthRefreshPayload(StrictModel):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


class OpenConnections:
    """Sockets admitted in this process, for the REALTIME_MAX_CONNECTIONS cap.

    ``draining`` is set once the process is stopping (``realtime.drain``): from then
    on every new socket is closed 4013, as when full.
    """

    count = 0
    draining = False

    def opened(self, endpoint: str) -> None:
        self.count += 1
        metrics.endpoint_meters(endpoint).opened()

    def closed(self, endpoint: str) -> None:
        self.count -= 1
        metrics.endpoint_meters(endpoint).open_closed()


connections = OpenConnections()
# This process's consumers, from their handshake until their disconnect: what the
# drain closes and the operators' live view counts. Weak, so that a consumer the
# server dropped without a disconnect cannot be kept alive by this set.
open_consumers: weakref.WeakSet[Any] = weakref.WeakSet()


def admission_refusal(consumer: Any) -> CloseCode | None:
    """The close code for an accepted socket that may not stay, or ``None``.

    Full (4013), an invalid credential (4001), none where one is needed (4008), a
    guest's scoped token on a users-only endpoint (4005).
    """
    auth = consumer.auth
    if connections.draining:
        recent.record_close(consumer, CloseCode.TRY_AGAIN_LATER, "draining")
        return CloseCode.TRY_AGAIN_LATER
    if connections.count >= int(conf.get("REALTIME_MAX_CONNECTIONS")):
        recent.record_close(consumer, CloseCode.TRY_AGAIN_LATER, "full")
        return CloseCode.TRY_AGAIN_LATER
    if auth.status == "invalid":
        return CloseCode.INVALID_CREDENTIAL
    if auth.status == "missing" and consumer.auth_required:
        return CloseCode.NO_CREDENTIAL
    if consumer.users_only and not consumer.user.is_authenticated:
        return CloseCode.FORBIDDEN
    return None


class CommonMessages:
    """Liveness, presence, server → client requests and PROTOCOL §4's types."""

    # auth.refresh costs a trip to the shared database thread: throttled (a knob).
    common_messages: ClassVar[dict[str, type[BaseModel] | None]] = {
        "ping": None,  # any object, echoed as is: nothing to validate
        "pong": PongPayload,
        "auth.refresh": AuthRefreshPayload,
    }
    # Handler errors already answered where they happened (a callback's TIMEOUT).
    quiet_errors: ClassVar[tuple[type[BaseException], ...]] = (CallbackTimeout,)
    heartbeat: Heartbeat | None = None
    _expiry: Deadline | None = None

    def start_connection(self: Any) -> None:
        self.callbacks = CallbackRegistry()
        open_consumers.add(self)

    def forget_headers(self: Any) -> None:
        """The handshake's headers are read at connect (the origin, the credential,
        an endpoint's ``on_connect``) and never after; the server's scope and the
        entry's copy share one list, kept for the socket's life (~1 KB):
        emptied."""
        headers = self.scope.get("headers")
        if isinstance(headers, list):
            headers.clear()

    def start_liveness(self: Any) -> None:
        """After ``on_connect``: the heartbeat, and the credential's expiry."""
        hb = heartbeat_settings()
        self.heartbeat = Heartbeat(
            send_ping=lambda nonce: self.send_frame_now("ping", {"nonce": nonce}),
            on_dead=self._heartbeat_timeout,
            on_beat=self.refresh_membership,
            interval=hb["interval"],
            timeout=hb["timeout"],
            max_missed=int(hb["max_missed"]),
            spawn=self.spawn,
            tick=float(conf.get("HEARTBEAT_TICK")),
        )
        self.heartbeat.start()
        self._arm_expiry()

    async def _heartbeat_timeout(self: Any) -> None:
        recent.record_close(self, CloseCode.HEARTBEAT_TIMEOUT, "no pong")
        await self.close_with(CloseCode.HEARTBEAT_TIMEOUT)

    def heard(self) -> None:
        """A valid frame came: the client is alive (it counts as a pong)."""
        if self.heartbeat is not None:
            self.heartbeat.alive()

    def stop_connection(self: Any) -> None:
        open_consumers.discard(self)
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self._expiry is not None:
            self._expiry.stop()
        self.callbacks.cancel_all()

    def _arm_expiry(self: Any) -> None:
        """Close 4001 when the credential expires (on the heartbeat's wheel, within
        a ``HEARTBEAT_TICK``: no timer or sleeping task per socket).

        ``auth.refresh`` only moves ``expires_at``: the deadline finds it later and
        waits again.
        """
        if self.expires_at is None or self.closing:
            return
        delay = self.expires_at - clock.now()
        if delay > 0:
            if self._expiry is None:
                tick = float(conf.get("HEARTBEAT_TICK"))
                self._expiry = Deadline(self._arm_expiry, tick=tick)
            self._expiry.start(min(delay, 3600.0))
            return
        logger.info(
            "credential expired conn=%s", self.conn_id, extra=self.log_context()
        )
        recent.record_close(self, CloseCode.INVALID_CREDENTIAL, "credential expired")
        self.spawn(self.close_with(CloseCode.INVALID_CREDENTIAL))

    # ------------------------------------------------------------------ presence
    def presence_info(self: Any) -> dict[str, Any]:
        """What presence records of this socket in every room it enters."""
        user_id = getattr(self.user, "pk", None)
        return {"endpoint": self.endpoint, "user_id": user_id, "rooms": []}

    async def enter_room(
        self: Any, room: str, info: dict[str, Any] | None = None
    ) -> None:
        """Count this connection as present in ``room`` (presence only, no group).

        Entering again with new ``info`` updates it (a nickname change); without, it is
        a no-op. The room and ``ALL`` are written in one round trip; Redis not
        answering raises ``Unavailable`` and leaves the socket as it was, so the
        client's retry writes again.
        """
        if room in self.presence and info is None:
            return
        before = self.presence.get(room)
        self.presence[room] = info or self.presence_info()
        self._list_rooms()
        try:
            await apresence_set(
                conn_id=self.conn_id,
                entries={room: self.presence[room], ALL: self.presence[ALL]},
            )
        except Unavailable:
            if before is None:
                self.presence.pop(room, None)
            else:
                self.presence[room] = before
            self._list_rooms()
            raise

    def _list_rooms(self: Any) -> None:
        self.presence[ALL]["rooms"] = [name for name in self.presence if name != ALL]

    def refresh_membership(self: Any) -> Callable[[], Awaitable[None]] | None:
        """On each answered heartbeat: presence entries live on (all of them in one
        write, posted without waiting: no task per beat), and group membership is
        renewed before channels-redis forgets it (after a day: the coroutine
        function returned, for the heartbeat to run). Redis not answering is
        logged; the next beat tries again (entries outlive a missed beat:
        ``PRESENCE_TTL`` spans several)."""
        posted = apresence_post(conn_id=self.conn_id, entries=self.presence)
        if posted is not None:
            posted.add_done_callback(self._presence_refreshed)
        now = clock.monotonic()
        if now - self._groups_refreshed > float(conf.get("REALTIME_GROUP_REFRESH")):
            self._groups_refreshed = now
            return self._rejoin_groups
        return None

    def _presence_refreshed(self: Any, posted: asyncio.Future) -> None:
        error = None if posted.cancelled() else posted.exception()
        if error is not None:
            logger.warning(
                "presence refresh failed conn=%s",
                self.conn_id,
                extra=self.log_context(),
                exc_info=None if isinstance(error, Unavailable) else error,
            )

    async def _rejoin_groups(self: Any) -> None:
        for group in self.groups_joined:
            await group_join(group, self.outbox)

    async def join_group(self: Any, group: str) -> None:
        """Hear ``group``'s broadcasts (counted in before the join: what arrives
        during it passes the outbox's group check). Not once the socket closes."""
        if self.closing:
            return
        self.groups_joined.add(group)
        try:
            await group_join(group, self.outbox)
        except BaseException:
            self.groups_joined.discard(group)
            raise

    async def leave_group(self: Any, group: str) -> None:
        if group in self.groups_joined:
            self.groups_joined.discard(group)
            await group_leave(group, self.outbox)

    def order_stream(self: Any, stream: str, *, last: int, gap_wait: float) -> None:
        """From now on, frames broadcast to ``stream`` with a ``seq`` reach this
        socket in seq order, once, after ``last``; a hole is read back through
        ``fill_gap`` after ``gap_wait`` seconds (``realtime.ordering``)."""
        self.outbox.order(stream, last=last, gap_wait=gap_wait)

    async def leave_everything(self: Any) -> None:
        """The socket is gone: out of presence and every group it joined. Each step
        survives the others' failures (Redis down: the TTL removes the entries)."""
        try:
            await apresence_leave(conn_id=self.conn_id, rooms=list(self.presence))
        except Unavailable:  # Redis away: the entries expire with their TTL
            logger.warning("presence leave failed conn=%s", self.conn_id)
        except Exception:
            logger.exception("presence leave failed conn=%s", self.conn_id)
        for group in list(self.groups_joined):
            try:
                await group_leave(group, self.outbox)
            except Exception:  # the rest of the cleanup must still run
                logger.exception("group leave failed conn=%s", self.conn_id)
        self.groups_joined.clear()

    # ------------------------------------------------------------------ requests
    async def request_client(
        self: Any,
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
        timeout = float(conf.get("CALLBACK_TIMEOUT") if timeout is None else timeout)

        async def send(request_id: str) -> None:
            await self.send_frame(type, payload, request_id=request_id)

        requests, timeouts = self.meters.callbacks(type)
        requests.inc()
        try:
            return await self.callbacks.call(send, expects, timeout)
        except CallbackTimeout as exc:
            timeouts.inc()
            await self.send_error(
                RequestTimeout(f"{type} was not answered within {timeout:g} s"),
                request_id=exc.request_id,
            )
            raise

    async def _on_reply(self: Any, payload: Any, envelope: ClientEnvelope) -> None:
        self.callbacks.resolve(envelope.request_id, envelope.type, payload)

    # ------------------------------------------------------------------ §4 types
    async def on_ping(self: Any, payload: Any, envelope: ClientEnvelope) -> None:
        await self.reply(envelope, "pong", envelope.payload)

    async def on_pong(self, payload: PongPayload, envelope: ClientEnvelope) -> None:
        if self.heartbeat is not None:
            self.heartbeat.pong(payload.nonce)

    async def on_auth_refresh(
        self: Any, payload: AuthRefreshPayload, envelope: ClientEnvelope
    ) -> None:
        result = await to_database_thread(validate_refresh_token)(payload.token)
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
