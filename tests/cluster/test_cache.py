"""Django's cache, and what the project keeps in it, on a Redis Cluster."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.crc import key_slot

from realtime import presence
from realtime.clustercache import RedisClusterCache

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def cluster_cache(redis_cluster):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return RedisClusterCache(redis_cluster.url, {"KEY_PREFIX": prefix})


def use_cluster_cache(settings, url: str) -> None:
    """Django's cache (so tickets, limits and presence) and REDIS_URL on the cluster."""
    settings.REDIS_URL = url
    settings.CACHES = {
        "default": {
            "BACKEND": "realtime.clustercache.RedisClusterCache",
            "LOCATION": url,
            "KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}",
        }
    }
    presence.reset_store()


def test_single_key_calls(cluster_cache):
    cache = cluster_cache
    assert cache.get("missing", "dflt") == "dflt"
    cache.set("answer", {"n": 42}, 30)
    assert cache.get("answer") == {"n": 42}
    assert cache.add("answer", "other") is False
    assert cache.add("fresh", 1, 30) is True
    assert cache.incr("fresh", 4) == 5
    with pytest.raises(ValueError):
        cache.incr("nothing")
    assert cache.has_key("fresh") and not cache.has_key("missing")
    assert cache.touch("fresh", 60) is True
    assert cache.delete("fresh") is True and cache.get("fresh") is None
    cache.set("gone", 1, 0)  # Django's meaning: expired at once
    assert cache.get("gone") is None


def test_many_key_calls_cross_slots(cluster_cache, redis_cluster):
    cache = cluster_cache
    keys = [f"k{n}" for n in range(40)]
    # The keys hash to slots of every node: one MGET/MSET would be refused.
    slots = {key_slot(cache.make_key(key).encode()) for key in keys}
    assert min(slots) < 5461 and max(slots) > 10922 and len(slots) > 30
    cache.set_many({key: f"v-{key}" for key in keys}, 30)
    got = cache.get_many([*keys, "absent"])
    assert got == {key: f"v-{key}" for key in keys}
    cache.delete_many(keys[:20])
    assert cache.get_many(keys) == {key: f"v-{key}" for key in keys[20:]}
    cache.set_many({key: 1 for key in keys[20:]}, 0)  # expired at once
    assert cache.get_many(keys) == {}
    assert cache.set_many({}) == [] and cache.delete_many([]) is None
    cache.set("x", 1)
    assert cache.clear() is True
    assert cache.get("x") is None


def test_the_project_on_the_cluster_cache(redis_cluster, settings):
    """Tickets, cache rate limits and presence, through the configured cache."""
    from django.core.cache import caches

    from realtime.ratelimit import CacheRateLimiter
    from realtime.tokens import ticket_issue, ticket_redeem

    use_cluster_cache(settings, redis_cluster.url)
    assert isinstance(caches["default"], RedisClusterCache)

    ticket = ticket_issue(user_id=7, expires_at=None)
    assert ticket_redeem(ticket)["user_id"] == 7
    assert ticket_redeem(ticket) is None  # once

    limiter = CacheRateLimiter(name="t", limit=2, window=60)
    assert limiter.take("u") is None and limiter.take("u") is None
    assert limiter.take("u") > 0

    store = presence.get_store()
    assert isinstance(store, presence.RedisPresence)
    rooms = [f"room-{n}" for n in range(12)]  # one hash per room, on its own slot
    for room in rooms:
        store.set(room, "c1", {"user": 7}, 30)
        store.set(room, "c2", {"user": 8}, 30)
    assert all(
        store.members(room) == {"c1": {"user": 7}, "c2": {"user": 8}} for room in rooms
    )
    store.remove(rooms[0], "c1")
    assert store.members(rooms[0]) == {"c2": {"user": 8}}
    # Every connection's ALL entry: its shards live on every node.
    nodes = {
        store.client.get_node_from_key(key).name for key in store._keys(presence.ALL)
    }
    assert len(nodes) == 3
    for n in range(30):
        store.set(presence.ALL, f"a{n}", {"n": n}, 30)
    assert len(store.members(presence.ALL)) == 30
    presence.reset_store()


async def test_the_event_loops_door_on_the_cluster(redis_cluster, settings):
    """Presence and shared limits through the asyncio cluster client: one
    connection's rooms (hashes on every node) written in one pipeline, writes made
    together batched, reads, and a budget shared with the sync door."""
    from realtime.cacheredis import loop_client
    from realtime.ratelimit import CacheRateLimiter

    use_cluster_cache(settings, redis_cluster.url)
    try:
        rooms = [f"hall-{n}" for n in range(12)]
        entries = {room: {"user": 7} for room in rooms}
        await presence.apresence_set(conn_id="c1", entries=entries)
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    presence.apresence_set(conn_id=f"d{n}", entries={rooms[0]: {}})
                    for n in range(50)
                )
            ),
            10,
        )
        assert len(await presence.aroom_members(rooms[0])) == 51
        assert await presence.aroom_members(rooms[5]) == {"c1": {"user": 7}}
        assert presence.room_members(rooms[5]) == {"c1": {"user": 7}}  # sync door
        assert await presence.aoccupied_rooms([*rooms, "empty"]) == set(rooms)
        await presence.apresence_leave(conn_id="c1", rooms=rooms)
        assert await presence.aoccupied_rooms(rooms[1:]) == set()

        limiter = CacheRateLimiter(name="a", limit=3, window=60)
        assert limiter.take("u") is None  # the sync door counts one
        assert await limiter.atake("u") is None
        assert await limiter.atake("u") is None
        assert await limiter.atake("u") > 0  # the fourth, across both doors
    finally:
        presence.reset_store()
        await loop_client(redis_cluster.url).aclose()
