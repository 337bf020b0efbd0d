"""The hub's relay between processes: each broadcast published once on Redis.

``RedisRelay`` (one Redis): one pub/sub channel per group with local members, one
listener per process. ``ShardedRelay`` (a Redis Cluster, ``redis+cluster://``):
sharded pub/sub, each group's channel on the node that owns its slot, a subscriber
and a listener per node. Both deliver what other processes publish through their
hub's ``deliver_local`` and, when messages may have been lost (Redis or a node gone),
close the affected local sockets with 4012 so that they resync (docs/protocol.md §2),
never leaving one connected but deaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

import msgpack  # events may carry bytes (camera frames); channels-redis uses it too
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime import logcontext, metrics
from realtime.protocol import CloseCode
from realtime.redisconn import new_async_client, node_address

logger = logging.getLogger("realtime.hub")


class RelayHub(Protocol):
    """What a relay needs of its hub (``realtime.hub.Hub``)."""

    origin: str  # this hub's id: its own messages come back and are skipped
    groups: dict[str, Any]  # the groups with local members

    async def deliver_local(self, group: str, event: dict[str, Any]) -> None: ...


class RedisRelay:
    """Carries broadcasts between processes over Redis pub/sub, one message each."""

    message_type = "message"  # what pub/sub calls a published message

    def __init__(self, hub: RelayHub, url: str, prefix: str) -> None:
        self.hub = hub
        self.prefix = f"{prefix}:hub:"
        # Named, so operators (and tests) can tell each process's relay in CLIENT LIST.
        self.client_name = f"rt-hub-{hub.origin}"
        self.url = url
        self.redis = new_async_client(url, client_name=self.client_name)
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

    def _pack(self, event: dict[str, Any]) -> bytes:
        # "t": when it was published (wall clock), for the relay's fan-out latency.
        return msgpack.packb(
            {"o": self.hub.origin, "e": event, "t": time.time()}, use_bin_type=True
        )

    async def publish(self, group: str, event: dict[str, Any]) -> None:
        await self.redis.publish(self._channel(group), self._pack(event))

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
                await self._lost(list(self.hub.groups))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if await self._resubscribe():
                    self.broken = False
                    # Sockets that joined while it was down may have missed what
                    # was published before the resubscribe: they resync too.
                    await self._lost(list(self.hub.groups))
                continue
            if message is None or message.get("type") != self.message_type:
                if not self.hub.groups:  # nothing subscribed: nothing to read
                    await asyncio.sleep(0.5)
                continue
            await self._deliver(message)

    async def _deliver(self, message: dict[str, Any]) -> None:
        """A relayed message to this process's sockets (not our own publications)."""
        try:
            data = msgpack.unpackb(message["data"], raw=False)
            if data["o"] == self.hub.origin:
                return  # delivered locally when it was published
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            await self.hub.deliver_local(channel[len(self.prefix) :], data["e"])
            if "t" in data:
                metrics.fanout_relay.observe(max(0.0, time.time() - data["t"]))
        except Exception:  # one bad message must not kill the listener
            logger.exception("hub relay could not deliver a message")

    async def _lost(self, groups: Iterable[str]) -> None:
        """Messages may be gone: make every affected client resync (4012)."""
        event = {"type": "realtime.close", "code": int(CloseCode.GOING_AWAY)}
        for group in groups:
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


class Shard:
    """One node of a Redis Cluster as the relay sees it: a subscriber connection of
    its own, the groups whose channels hash to the node's slots, a listener."""

    def __init__(self, name: str, client: Any, alive: str) -> None:
        self.name = name  # "host:port"
        self.client = client
        self.alive = alive  # a channel of the node's own, never unsubscribed
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.groups: set[str] = set()
        self.listener: asyncio.Task | None = None
        self.broken = False
        self.alive_subscribed = False
        self.retired = False  # the node owns no slots any more: the shard is done


class ShardedRelay(RedisRelay):
    """The relay on a Redis Cluster: sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``,
    Redis >= 7).

    A group's channel hashes to one slot, so its messages go through the one node
    that owns the slot, and groups spread over the nodes: each node carries its share
    of the broadcasts instead of every node all of them (plain ``PUBLISH`` on a
    cluster is copied to every node). Each node the process has groups on gets a
    subscriber connection and a listener of its own, so a slow or lost node delays
    only its own groups. The guarantees are the single Redis's, per node: a lost
    node closes the sockets of its groups with 4012, its groups are subscribed again
    (on whichever node owns their slots by then) and their sockets resync once more;
    a join while its node is away waits for that resubscribe.
    """

    message_type = "smessage"
    # The longest wait between two resubscribes of a lost node's groups: a replica
    # takes over within seconds (docs/deployment.md).
    recover_backoff_max = 2.0

    def __init__(self, hub: RelayHub, url: str, prefix: str) -> None:
        super().__init__(hub, url, prefix)
        self.pubsub = None  # no cluster-wide subscriber: one per node (Shard)
        self.shards: dict[str, Shard] = {}
        self.group_shard: dict[str, Shard] = {}
        self.slot_map_lock = asyncio.Lock()
        self.slot_map_reads = 0

    async def _owner(self, channel: str) -> Any:
        """The node that owns ``channel``'s slot (the slot map loaded once)."""
        await self.redis.initialize()
        return self.redis.get_node_from_key(channel)

    def _alive_channel(self, node_name: str) -> str:
        """A channel whose slot ``node_name`` owns, for its idle subscriber."""
        slots = self.redis.nodes_manager.slots_cache
        for n in range(1 << 16):
            channel = f"{self.prefix}!alive{{{n}}}"
            owners = slots.get(key_slot(channel.encode()))
            if owners and owners[0].name == node_name:
                return channel
        raise RuntimeError(f"no slot of {node_name} found")

    def _shard(self, node: Any) -> Shard:
        shard = self.shards.get(node.name)
        if shard is None:
            client = new_async_client(
                node_address(self.url, node.host, node.port),
                client_name=self.client_name,
            )
            shard = Shard(node.name, client, self._alive_channel(node.name))
            self.shards[node.name] = shard
        return shard

    async def subscribe(self, group: str) -> None:
        channel = self._channel(group)
        shard = self._shard(await self._owner(channel))
        shard.groups.add(group)
        self.group_shard[group] = shard
        try:
            if not shard.broken:
                if not shard.alive_subscribed:
                    await shard.pubsub.ssubscribe(shard.alive)
                    shard.alive_subscribed = True
                await shard.pubsub.ssubscribe(channel)
        except Exception:
            shard.groups.discard(group)
            self.group_shard.pop(group, None)
            raise
        if shard.listener is None or shard.listener.done():
            shard.listener = asyncio.ensure_future(self._listen_shard(shard))

    async def unsubscribe(self, group: str) -> None:
        shard = self.group_shard.pop(group, None)
        if shard is None:
            return
        shard.groups.discard(group)
        try:
            await shard.pubsub.sunsubscribe(self._channel(group))
        except Exception:  # the listener notices a broken connection itself
            logger.warning("unsubscribe from %s failed", group)

    async def publish(self, group: str, event: dict[str, Any]) -> None:
        # Straight to the owning node on its own bounded pool: the cluster client's
        # command path, on a timeout under load, re-reads the slot map and drops
        # connections other publishes are using (redis-py 8.1).
        channel = self._channel(group)
        data = self._pack(event)
        try:
            await self._spublish(channel, data)
        except (MovedError, RedisConnectionError, RedisTimeoutError):
            # The slot moved (a migration; a failed-over node back as a replica
            # answers MOVED), or its node is lost: that one never answers MOVED,
            # and only a fresh slot map tells whether its replica took over. Once.
            await self._refresh_slots()
            await self._spublish(channel, data)

    async def _spublish(self, channel: str, data: bytes) -> None:
        shard = self._shard(await self._owner(channel))
        await shard.client.spublish(channel, data)

    async def _refresh_slots(self) -> None:
        """Read the slot map again, once for every caller that failed before the
        read began (a lost node fails many publishes at once), and let go of the
        publish-only connections to nodes that own no slots any more."""
        seen = self.slot_map_reads
        async with self.slot_map_lock:
            if self.slot_map_reads != seen:
                return  # read since this caller failed
            try:
                await self.redis.nodes_manager.initialize()
            finally:
                self.slot_map_reads += 1
        primaries = {node.name for node in self.redis.get_primaries()}
        for name, shard in list(self.shards.items()):
            # A shard with a listener leaves by itself (_resubscribe_shard).
            if name not in primaries and shard.listener is None:
                del self.shards[name]
                await self._close_shard(shard)

    async def _listen_shard(self, shard: Shard) -> None:
        logcontext.clear()  # started from a socket's task: serves them all
        while not self.closed and not shard.retired:
            try:
                message = await shard.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "hub relay lost Redis node %s (%s): closing its sockets",
                    shard.name,
                    exc,
                )
                await self._recover(shard)
                continue
            if message is not None and message.get("type") == self.message_type:
                await self._deliver(message)

    async def _recover(self, shard: Shard) -> None:
        """Resync the lost node's sockets (4012), subscribe its groups again once it
        (or the node now owning their slots) answers, then resync once more: what
        was published before the resubscribe reached nobody here."""
        shard.broken = True
        await self._lost(list(shard.groups))
        resync: set[str] = set()  # every group of the shard's while it was away
        backoff = 0.1
        while not self.closed:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.recover_backoff_max)
            resync.update(shard.groups)
            if await self._resubscribe_shard(shard):
                break
        shard.broken = False
        await self._lost(resync)

    async def _resubscribe_shard(self, shard: Shard) -> bool:
        """Subscribe ``shard``'s groups again, each on the node that owns its slot
        now: on the shard's own node while it still is a primary; if it is not (its
        replica took over, or it came back as a replica), every group moves to its
        new owner and the shard ends. ``False`` while that cannot be done yet."""
        try:
            with contextlib.suppress(Exception):  # the old connection is dead
                await shard.pubsub.aclose()
            await self._refresh_slots()  # the slot map, afresh
            if shard.name not in {n.name for n in self.redis.get_primaries()}:
                for group in list(shard.groups):
                    await self._move(shard, group)
                await self._retire(shard)
                return True
            shard.pubsub = shard.client.pubsub(ignore_subscribe_messages=True)
            await shard.pubsub.ssubscribe(shard.alive)
            for group in list(shard.groups):
                channel = self._channel(group)
                if self.redis.get_node_from_key(channel).name == shard.name:
                    await shard.pubsub.ssubscribe(channel)
                else:  # its slot moved: subscribed on the new owner
                    await self._move(shard, group)
        except Exception as exc:
            logger.warning("hub relay resubscribe on %s failed: %s", shard.name, exc)
            return False
        return True

    async def _move(self, shard: Shard, group: str) -> None:
        """``group``, of ``shard``'s, subscribed on the node owning its slot now
        (a shard's groups all have members here: a leave takes its group out)."""
        await self.subscribe(group)  # the owner's shard takes it
        shard.groups.discard(group)

    async def _retire(self, shard: Shard) -> None:
        """``shard``'s node owns no slots any more: its connection and listener end
        (a listener retiring its own shard returns once this does)."""
        shard.retired = True
        if self.shards.get(shard.name) is shard:
            del self.shards[shard.name]
        await self._close_shard(shard)

    async def _close_shard(self, shard: Shard) -> None:
        try:
            await shard.pubsub.aclose()
            await shard.client.aclose()
        except Exception:  # closing a dead connection
            logger.debug("relay close", exc_info=True)

    async def close(self) -> None:
        self.closed = True
        for shard in self.shards.values():
            if shard.listener is not None:
                shard.listener.cancel()
            await self._close_shard(shard)
        try:
            await self.redis.aclose()
        except Exception:
            logger.debug("relay close", exc_info=True)
