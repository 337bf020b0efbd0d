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

The relays between processes (one Redis, or a Redis Cluster's sharded pub/sub) are in
``realtime.relay``: when messages may have been lost they close the affected local
sockets with 4012 so that clients resync with ``since`` (docs/protocol.md §2), never
left connected but deaf.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Protocol

from django.conf import settings

from realtime import logcontext, metrics
from realtime.conf import realtime_settings
from realtime.looplocal import per_loop
from realtime.redisconn import is_cluster
from realtime.relay import RedisRelay, ShardedRelay

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
        self.relay: RedisRelay | None = None
        if redis_url:
            relay = ShardedRelay if is_cluster(redis_url) else RedisRelay
            self.relay = relay(self, redis_url, prefix)

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
        try:
            if self.relay is not None:  # first, so other processes do not wait
                await self.relay.publish(group, event)
        except Exception:
            # Other processes may miss it (the caller hears why); this one's own
            # sockets still get it.
            await self.deliver_local(group, event)
            raise
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


def _new_hub() -> Hub:
    redis_url = settings.REDIS_URL or None
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "rt"
    return Hub(redis_url, prefix)


get_hub = per_loop(_new_hub)  # this event loop's hub


def fanout_mode() -> str:
    """``hub`` (default) or ``layer``: the naive channel-layer path, kept to compare."""
    return realtime_settings.REALTIME_FANOUT
