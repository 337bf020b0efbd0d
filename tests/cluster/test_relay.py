"""The hub's relay on a Redis Cluster: sharded pub/sub, groups spread over nodes."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from realtime.api import _check_cluster
from realtime.hub import Hub
from realtime.relay import ShardedRelay

pytestmark = pytest.mark.timeout(60)


class Recorder:
    def __init__(self, name: str) -> None:
        self.channel_name = name
        self.events: list[dict] = []

    def deliver_now(self, event: dict) -> bool:
        self.events.append(event)
        return True

    async def hub_deliver(self, event: dict) -> None:  # pragma: no cover - unused
        self.events.append(event)


async def until(check, timeout: float = 5, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        await asyncio.sleep(0.02)


def texts(recorder: Recorder) -> list[str]:
    return [e["text"] for e in recorder.events if e["type"] == "realtime.fanout"]


async def shard_subscribers(ports: list[int], channels: list[str]) -> dict:
    """``{channel: {port: subscribers}}`` from ``PUBSUB SHARDNUMSUB`` on each node."""
    found: dict[str, dict[int, int]] = {channel: {} for channel in channels}
    for port in ports:
        node = aioredis.Redis(host="127.0.0.1", port=port)
        try:
            reply = await node.execute_command("PUBSUB", "SHARDNUMSUB", *channels)
        finally:
            await node.aclose()
        for channel, count in zip(reply[::2], reply[1::2], strict=True):
            if count:
                found[channel.decode()][port] = count
    return found


async def slot_owners(port: int) -> dict[int, int]:
    """``{slot: port}`` from ``CLUSTER SLOTS``."""
    node = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        ranges = await node.execute_command("CLUSTER", "SLOTS")
    finally:
        await node.aclose()
    return {
        slot: int(owner[1])
        for start, end, owner, *_ in ranges
        for slot in range(int(start), int(end) + 1)
    }


async def test_groups_spread_over_every_node_and_cross_processes(redis_cluster):
    url, prefix = redis_cluster.url, f"t{id(object())}"
    a, b = Hub(url, prefix), Hub(url, prefix)
    assert isinstance(a.relay, ShardedRelay)
    groups = [f"session.{n}" for n in range(60)]
    try:
        there = {group: Recorder(f"t-{group}") for group in groups}
        for group in groups:
            await b.join(group, there[group])
        here = Recorder("here")  # a member in the publishing process too
        await a.join(groups[0], here)
        # Each group's channel is subscribed on the one node that owns its slot,
        # and the groups land on all three nodes.
        channels = [f"{prefix}:hub:{group}" for group in groups]
        subscribers = await shard_subscribers(redis_cluster.ports, channels)
        owners = await slot_owners(redis_cluster.ports[0])
        for channel in channels:
            (port,) = subscribers[channel]
            assert port == owners[key_slot(channel.encode())]
        assert {p for s in subscribers.values() for p in s} == set(redis_cluster.ports)
        assert subscribers[channels[0]] == {owners[key_slot(channels[0].encode())]: 2}
        assert len(b.relay.shards) == 3

        for n in range(5):
            for group in groups:
                await a.publish(
                    group, {"type": "realtime.fanout", "text": f"{group}/{n}"}
                )
        await until(lambda: all(len(r.events) == 5 for r in there.values()))
        for group in groups:  # each group its own messages, in order
            assert texts(there[group]) == [f"{group}/{n}" for n in range(5)]
        await asyncio.sleep(0.2)
        assert texts(here) == [f"{groups[0]}/{n}" for n in range(5)]  # not twice

        # A group left is unsubscribed on its node and gets nothing more.
        await b.leave(groups[1], there[groups[1]])
        await b.leave(groups[1], there[groups[1]])  # twice: nothing to do
        left = await shard_subscribers(redis_cluster.ports, [channels[1]])
        assert left[channels[1]] == {}
        await a.publish(groups[1], {"type": "realtime.fanout", "text": "late"})
        await a.publish(groups[2], {"type": "realtime.fanout", "text": "on time"})
        await until(lambda: len(there[groups[2]].events) == 6)
        assert "late" not in texts(there[groups[1]])
    finally:
        await a.close()
        await b.close()


async def test_bytes_and_malformed_messages_on_a_shard(redis_cluster):
    from redis.asyncio.cluster import RedisCluster

    url, prefix = redis_cluster.url, f"t{id(object())}"
    a, b = Hub(url, prefix), Hub(url, prefix)
    raw = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    try:
        there = Recorder("t")
        await b.join("stream.cam", there)
        await raw.spublish(f"{prefix}:hub:stream.cam", b"\xc1 not msgpack")
        jpeg = bytes(range(256)) * 200
        await a.publish("stream.cam", {"type": "stream.frame", "seq": 7, "jpeg": jpeg})
        await until(lambda: there.events)
        assert there.events == [{"type": "stream.frame", "seq": 7, "jpeg": jpeg}]
    finally:
        await raw.aclose()
        await a.close()
        await b.close()


async def test_a_lost_node_resyncs_its_groups_only_and_they_hear_again(
    own_redis_cluster, settings
):
    cluster = own_redis_cluster
    url, prefix = cluster.url, f"t{id(object())}"
    a, b = Hub(url, prefix), Hub(url, prefix)
    owners = await slot_owners(cluster.ports[0])

    def port_of(group: str) -> int:
        return owners[key_slot(f"{prefix}:hub:{group}".encode())]

    groups = [f"session.{n}" for n in range(40)]
    lost_port = port_of(groups[0])
    victim = cluster.ports.index(lost_port)
    lost = [g for g in groups if port_of(g) == lost_port]
    kept = [g for g in groups if port_of(g) != lost_port]
    try:
        there = {group: Recorder(group) for group in groups}
        for group in groups:
            await b.join(group, there[group])
        settings.REDIS_URL = url  # readiness checks this cluster
        await _check_cluster()
        # Both clients have read the slot map (a process that starts while its seed
        # node is away cannot: REDIS_URL names one node).
        await a.relay.redis.initialize()
        cluster.kill(victim)
        with pytest.raises(RedisConnectionError):  # not ready while a node is away
            await _check_cluster()
        closing = {"type": "realtime.close", "code": 4012}
        await until(lambda: all(there[g].events == [closing] for g in lost))
        # Groups on the other nodes kept their subscription: no resync for them.
        await a.publish(kept[0], {"type": "realtime.fanout", "text": "still"})
        await until(lambda: texts(there[kept[0]]) == ["still"])
        assert all(not there[g].events for g in kept[1:])
        # A join while its node is away waits for the resubscribe.
        late = Recorder("late")
        await b.join(lost[1], late)

        cluster.start_node(victim)
        cluster.wait_ok(timeout=20)
        deadline = time.monotonic() + 20
        while "back" not in texts(there[lost[0]]):
            assert time.monotonic() < deadline, "the lost node's group stayed deaf"
            with contextlib.suppress(Exception):  # a's client finds the node again
                await a.publish(lost[0], {"type": "realtime.fanout", "text": "back"})
            await asyncio.sleep(0.2)
        # Once back, its sockets resynced once more (what was published before the
        # resubscribe may be gone); the late joiner too.
        for group in lost:
            closes = [e for e in there[group].events if e["type"] == "realtime.close"]
            assert len(closes) == 2
        assert closing in late.events
        await a.publish(lost[1], {"type": "realtime.fanout", "text": "heard"})
        await until(lambda: "heard" in texts(late))
    finally:
        await a.close()
        await b.close()
