"""The hub's relay through a failover: a master is killed, its replica takes its
slots over, and the groups of that node hear again everywhere."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.crc import key_slot

from realtime.hub import Hub
from tests.cluster.test_relay import Recorder, slot_owners, texts, until

pytestmark = pytest.mark.timeout(60)

CLOSING = {"type": "realtime.close", "code": 4012}


async def agreed_owner(cluster, slot: int) -> int | None:
    """The port owning ``slot`` when every running node says the same, else None."""
    owners = set()
    for port in cluster.running():
        try:
            owners.add((await slot_owners(port)).get(slot))
        except Exception:  # a node that does not answer yet
            return None
    return owners.pop() if len(owners) == 1 else None


async def heard(publisher: Hub, recorder: Recorder, group: str, text: str) -> None:
    """Publish ``text`` until ``recorder`` hears it (what was published before the
    receiver subscribed again reached nobody), 10 s at most."""
    deadline = time.monotonic() + 10
    while text not in texts(recorder):
        assert time.monotonic() < deadline, f"{group} stayed deaf"
        await publisher.publish(group, {"type": "realtime.fanout", "text": text})
        await asyncio.sleep(0.1)


async def test_a_failover_moves_the_lost_nodes_groups_to_the_replica(replica_cluster):
    cluster = replica_cluster
    url, prefix = cluster.url, f"t{id(object())}"
    # b has members in every group; a only publishes (no subscriber anywhere).
    a, b = Hub(url, prefix), Hub(url, prefix)
    owners = await slot_owners(cluster.ports[0])

    def slot(group: str) -> int:
        return key_slot(f"{prefix}:hub:{group}".encode())

    groups = [f"session.{n}" for n in range(40)]
    victim_port = owners[slot(groups[0])]
    lost = [g for g in groups if owners[slot(g)] == victim_port]
    kept = [g for g in groups if owners[slot(g)] != victim_port]
    # One more group on the lost node's slots, joined only after the failover.
    fresh = next(
        g
        for g in (f"session.x{n}" for n in range(1000))
        if owners[slot(g)] == victim_port
    )
    victim = f"127.0.0.1:{victim_port}"
    try:
        there = {group: Recorder(group) for group in groups}
        for group in groups:
            await b.join(group, there[group])
        # a has published to the node (its connection there is the one that dies).
        await a.publish(lost[0], {"type": "realtime.fanout", "text": "before"})
        await until(lambda: texts(there[lost[0]]) == ["before"])
        assert victim in a.relay.shards and victim in b.relay.shards
        there[lost[0]].events.clear()

        cluster.kill(cluster.ports.index(victim_port))
        killed = time.monotonic()
        await until(lambda: all(there[g].events == [CLOSING] for g in lost))
        # The replica takes the slots over (cluster-node-timeout 2 s, then its
        # election): every running node names it.
        deadline = killed + 20
        while (owner := await agreed_owner(cluster, slot(lost[0]))) in (
            None,
            victim_port,
        ):
            assert time.monotonic() < deadline, "no failover within 20 s"
            await asyncio.sleep(0.1)
        failover = time.monotonic() - killed
        print(f"failover took {failover:.1f} s")  # noqa: T201 (docs/deployment.md)
        assert owner in cluster.running()

        # A process with no subscriber on the lost node publishes at once: its
        # first publishes find the new owner (no MOVED ever comes from a dead
        # node), reading the slot map once for many that failed together.
        reads = a.relay.slot_map_reads
        await asyncio.gather(
            *(a.publish(g, {"type": "realtime.fanout", "text": "1st"}) for g in lost)
        )
        assert 1 <= a.relay.slot_map_reads - reads < len(lost)
        assert victim not in a.relay.shards  # its connection to the dead node: gone

        # The lost groups hear again in b, each resynced a second time (what was
        # published before the resubscribe reached nobody).
        for group in lost:
            await heard(a, there[group], group, f"back {group}")
            closes = [e for e in there[group].events if e["type"] == "realtime.close"]
            assert closes == [CLOSING, CLOSING], group
        await until(lambda: victim not in b.relay.shards)  # its listener ended
        assert all(b.relay.group_shard[g].name == f"127.0.0.1:{owner}" for g in lost)
        # Groups on the other nodes never noticed.
        assert all(not there[g].events for g in kept)

        # A member joining after the failover hears, in a group that was there and
        # in one subscribed afresh (on the new owner).
        late, newcomer = Recorder("late"), Recorder("newcomer")
        await b.join(lost[1], late)
        await b.join(fresh, newcomer)
        await a.publish(lost[1], {"type": "realtime.fanout", "text": "late"})
        await a.publish(fresh, {"type": "realtime.fanout", "text": "fresh"})
        await until(lambda: texts(late) == ["late"] and texts(newcomer) == ["fresh"])
        # And the other way round: b publishes, a member in a hears.
        mine = Recorder("mine")
        await a.join(lost[2], mine)
        await b.publish(lost[2], {"type": "realtime.fanout", "text": "from b"})
        await until(lambda: texts(mine) == ["from b"])
    finally:
        await a.close()
        await b.close()
