"""The per-process fan-out hub: a broadcast costs per receiver only the socket write.

Channels' naive path (``group_send`` → each receiver's queue → dispatch → ``send``)
pays, per receiver, a deep copy of the event, a queue round trip, a new task and,
before every dispatched handler, a hop into the database thread; the in-memory layer
also walks every channel on each receive. Measured here that is ~25x slower than a plain
loop over sockets (docs/performance.md).

The hub keeps, per process and event loop, ``group → {channel_name: consumer}`` for the
sockets of this process and hands each of them the one prepared event, in order. Across
processes (``REDIS_URL`` set) a broadcast is published once on Redis pub/sub; every
process subscribed to that group (it has local members) delivers it to its own sockets:
one message per group per process, as Centrifugo's hub does, not one per receiver.

If the Redis subscription breaks, messages may have been lost: every local socket of a
subscribed group is closed with 4012 so that clients reconnect and resync with ``since``
(docs/protocol.md §2), never left connected but deaf.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Protocol

import msgpack  # events may carry bytes (camera frames); channels-redis uses it too
from django.conf import settings

from realtime import logcontext, metrics
from realtime.conf import realtime_settings
from realtime.looplocal import per_loop
from realtime.protocol import CloseCode

logger = logging.getLogger("realtime.hub")


class Member(Protocol):
    channel_name: str

    def deliver_now(self, event: dict[str, Any]) -> bool: ...

    async def hub_deliver(self, event: dict[str, Any]) -> None: ...


class Hub:
    """Local group membership and delivery for one event loop."""

    def __init__(self, redis_url: str | None = None, prefix: str = "rt") -> None:
        self.groups: dict[str, dict[str, Member]] = {}
        self.origin = secrets.token_hex(8)
        self.relay = RedisRelay(self, redis_url, prefix) if redis_url else None

    async def join(self, group: str, member: Member) -> None:
        members = self.groups.get(group)
        if members is not None:
            members[member.channel_name] = member
            return
        # The member goes in before the await, so a concurrent leave of another
        # member cannot delete the group (and unsubscribe) under us.
        self.groups[group] = {member.channel_name: member}
        if self.relay is not None:
            try:
                await self.relay.subscribe(group)
            except Exception:
                # Not subscribed: undo, so the next join tries again (never deaf).
                members = self.groups.get(group)
                if members is not None:
                    members.pop(member.channel_name, None)
                    if not members:
                        del self.groups[group]
                raise

    async def leave(self, group: str, member: Member) -> None:
        members = self.groups.get(group)
        if members is None or members.pop(member.channel_name, None) is None:
            return
        if not members:
            del self.groups[group]
            if self.relay is not None:
                await self.relay.unsubscribe(group)

    async def publish(self, group: str, event: dict[str, Any]) -> None:
        """Deliver ``event`` to every socket of ``group``, here and in every process."""
        started = time.perf_counter()
        if self.relay is not None:  # first, so other processes do not wait for ours
            await self.relay.publish(group, event)
        await self.deliver_local(group, event)
        metrics.fanout_local.observe(time.perf_counter() - started)

    async def deliver_local(self, group: str, event: dict[str, Any]) -> None:
        """Hand the one shared ``event`` (never copied or mutated) to each member.

        ``deliver_now`` writes without awaiting when it can (a prepared frame, in
        order): no coroutine per receiver on the common path. Otherwise, and for
        every other event, ``hub_deliver``.
        """
        members = self.groups.get(group)
        if not members:
            return
        # Lines logged while delivering belong to the receivers, not to the task
        # that publishes: its fields are set aside (once per event, not per socket).
        token = logcontext.set_aside()
        try:
            for member in tuple(members.values()):
                try:
                    if not member.deliver_now(event):
                        await member.hub_deliver(event)
                except Exception:  # one broken socket must not stop the fan-out
                    logger.exception("delivery to %s failed", member.channel_name)
        finally:
            logcontext.reset(token)

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()


class RedisRelay:
    """Carries broadcasts between processes over Redis pub/sub, one message each."""

    def __init__(self, hub: Hub, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.hub = hub
        self.prefix = f"{prefix}:hub:"
        # Named, so operators (and tests) can tell each process's relay in CLIENT LIST.
        self.client_name = f"rt-hub-{hub.origin}"
        self.redis = aioredis.Redis.from_url(url, client_name=self.client_name)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.listener: asyncio.Task | None = None
        self.closed = False
        # Redis was lost and the subscriptions are not back yet: a join then only
        # waits for the listener's resubscribe (a subscribe on the pubsub it is
        # about to replace would be lost with it).
        self.broken = False

    def _channel(self, group: str) -> str:
        return self.prefix + group

    async def subscribe(self, group: str) -> None:
        if not self.broken:
            await self.pubsub.subscribe(self._channel(group))
        if self.listener is None or self.listener.done():
            self.listener = asyncio.ensure_future(self._listen())

    async def unsubscribe(self, group: str) -> None:
        try:
            await self.pubsub.unsubscribe(self._channel(group))
        except Exception:  # the listener notices a broken connection itself
            logger.warning("unsubscribe from %s failed", group)

    async def publish(self, group: str, event: dict[str, Any]) -> None:
        # "t": when it was published (wall clock), for the relay's fan-out latency.
        message = msgpack.packb(
            {"o": self.hub.origin, "e": event, "t": time.time()}, use_bin_type=True
        )
        await self.redis.publish(self._channel(group), message)

    async def _listen(self) -> None:
        logcontext.clear()  # started from a socket's task: serves them all
        backoff = 0.1
        while not self.closed:
            try:
                message = await self.pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("hub relay lost Redis (%s): closing its sockets", exc)
                self.broken = True
                await self._lost()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if await self._resubscribe():
                    self.broken = False
                    # Sockets that joined while it was down may have missed what
                    # was published before the resubscribe: they resync too.
                    await self._lost()
                continue
            if message is None or message.get("type") != "message":
                if not self.hub.groups:  # nothing subscribed: nothing to read
                    await asyncio.sleep(0.5)
                continue
            try:
                data = msgpack.unpackb(message["data"], raw=False)
                if data["o"] == self.hub.origin:
                    continue  # delivered locally when it was published
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                await self.hub.deliver_local(channel[len(self.prefix) :], data["e"])
                if "t" in data:
                    metrics.fanout_relay.observe(max(0.0, time.time() - data["t"]))
            except Exception:  # one bad message must not kill the listener
                logger.exception("hub relay could not deliver a message")

    async def _lost(self) -> None:
        """Messages may be gone: make every affected client resync (4012)."""
        event = {"type": "realtime.close", "code": int(CloseCode.GOING_AWAY)}
        for group in list(self.hub.groups):
            await self.hub.deliver_local(group, event)

    async def _resubscribe(self) -> bool:
        """A new pubsub subscribed to every group with local members; ``False``
        while Redis is still away."""
        try:
            await self.pubsub.aclose()
            self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            channels = [self._channel(group) for group in self.hub.groups]
            await self.pubsub.subscribe(*channels, self.prefix + "!alive")
        except Exception as exc:
            logger.warning("hub relay resubscribe failed: %s", exc)
            return False
        return True

    async def close(self) -> None:
        self.closed = True
        if self.listener is not None:
            self.listener.cancel()
        try:
            await self.pubsub.aclose()
            await self.redis.aclose()
        except Exception:  # closing a dead connection
            logger.debug("relay close", exc_info=True)


def _new_hub() -> Hub:
    redis_url = settings.REDIS_URL or None
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "rt"
    return Hub(redis_url, prefix)


get_hub = per_loop(_new_hub)  # this event loop's hub


def fanout_mode() -> str:
    """``hub`` (default) or ``layer``: the naive channel-layer path, kept to compare."""
    return realtime_settings.REALTIME_FANOUT
