"""Presence entries expire after their TTL unless the heartbeat refreshes them."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async

from realtime import presence
from realtime.presence import LocalPresence, RedisPresence
from tests.conftest import communicator, recv
from tests.services import redis_url


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(redis_url())
    yield client
    client.close()


@pytest.fixture(params=["cache", "redis"])
def store(request, clock):
    if request.param == "cache":
        return LocalPresence(clock=clock)
    client = request.getfixturevalue("redis_client")
    return RedisPresence(client, f"test-{uuid.uuid4().hex}:", clock=clock)


def test_entry_expires_after_ttl_unless_refreshed(store, clock):
    store.set("room", "c1", {"user_id": 1}, ttl=10)
    store.set("room", "c2", {"user_id": 2}, ttl=10)
    assert set(store.members("room")) == {"c1", "c2"}
    clock.now += 8
    store.set("room", "c1", {"user_id": 1}, ttl=10)  # the heartbeat of c1
    clock.now += 5  # c2 is 13 s old, c1 refreshed 5 s ago
    assert store.members("room") == {"c1": {"user_id": 1}}
    clock.now += 6
    assert store.members("room") == {}


def test_remove(store, clock):
    store.set("room", "c1", {"a": 1}, ttl=10)
    store.set("room", "c2", {"a": 2}, ttl=20)
    store.remove("room", "c1")
    assert store.members("room") == {"c2": {"a": 2}}
    store.remove("room", "c2")
    store.remove("room", "c2")
    assert store.members("room") == {}


def test_redis_presence_is_shared_between_processes(redis_client, clock):
    prefix = f"test-{uuid.uuid4().hex}:"
    server_a = RedisPresence(redis_client, prefix, clock=clock)
    server_b = RedisPresence(redis_client, prefix, clock=clock)
    server_a.set("room", "a1", {"n": 1}, ttl=5)
    server_b.set("room", "b1", {"n": 2}, ttl=5)
    assert set(server_a.members("room")) == {"a1", "b1"}
    clock.now += 6  # server A "crashed": nothing refreshed
    assert server_b.members("room") == {}
    assert redis_client.hlen(f"{prefix}presence:room") == 0  # pruned on read


def test_stats_from_presence(settings):
    presence.presence_set(
        conn_id="c1",
        entries={
            presence.ALL: {
                "endpoint": "sessions",
                "user_id": 1,
                "rooms": ["session.1"],
            },
            "session.1": {"nickname": "a"},
        },
    )
    presence.presence_set(
        conn_id="c2",
        entries={presence.ALL: {"endpoint": "copilot", "user_id": 1, "rooms": []}},
    )
    presence.presence_set(
        conn_id="c3",
        entries={presence.ALL: {"endpoint": "copilot", "user_id": None, "rooms": []}},
    )
    assert presence.presence_stats() == {
        "online_users": 1,
        "total_connections": 3,
        "active_rooms": 1,
        "by_endpoint": {"sessions": 1, "copilot": 2},
    }
    presence.presence_leave(conn_id="c1", rooms=[presence.ALL, "session.1"])
    assert presence.room_members("session.1") == {}
    assert presence.presence_stats()["total_connections"] == 2


def test_reads_from_another_thread_survive_concurrent_changes():
    """DRF views read presence from a worker thread while the loop joins and leaves."""
    import sys
    import threading

    store = LocalPresence()
    store.set("room", "steady", {"participant_id": 7}, ttl=60)
    stop = threading.Event()

    def churn():
        n = 0
        while not stop.is_set():
            store.set("room", f"c{n % 50}", {"participant_id": n}, ttl=60)
            store.remove("room", f"c{(n + 25) % 50}")
            n += 1

    writer = threading.Thread(target=churn)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, inside iterations too
    writer.start()
    try:
        for _ in range(3000):
            members = store.members("room")  # never "changed size during iteration"
            assert members["steady"] == {"participant_id": 7}
    finally:
        stop.set()
        writer.join(5)
        sys.setswitchinterval(interval)


def test_a_late_refresh_brings_an_expired_entry_back(clock):
    store = LocalPresence(clock=clock)
    store.set("room", "c1", {"n": 1}, ttl=10)
    clock.now += 11  # the beat came late: the entry expired and is pruned on read
    assert store.members("room") == {}
    store.set("room", "c1", {"n": 1}, ttl=10)  # what the heartbeat does now
    assert store.members("room") == {"c1": {"n": 1}}


def test_entries_expire_one_by_one_whatever_order_they_were_set_in(clock):
    store = LocalPresence(clock=clock)
    store.set("room", "long", {"n": 1}, ttl=30)
    store.set("room", "short", {"n": 2}, ttl=10)
    clock.now += 5
    store.set("room", "shorter", {"n": 3}, ttl=2)  # expires before the others
    assert set(store.members("room")) == {"long", "short", "shorter"}
    clock.now += 3
    assert set(store.members("room")) == {"long", "short"}
    store.set("room", "short", {"n": 2}, ttl=30)  # refreshed: now after "long"
    clock.now += 23
    assert set(store.members("room")) == {"short"}
    clock.now += 10
    assert store.members("room") == {}
    store.remove("room", "short")  # already gone: nothing to do, nothing breaks
    store.set("room", "back", {"n": 4}, ttl=10)
    assert store.members("room") == {"back": {"n": 4}}


def test_store_follows_the_cache_backend(settings):
    presence.reset_store()
    assert isinstance(presence.get_store(), LocalPresence)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url(),
            "KEY_PREFIX": "t",
        }
    }
    try:
        presence.reset_store()
        store = presence.get_store()
        assert isinstance(store, RedisPresence)
        store.set("x", "c", {"ok": True}, ttl=5)
        assert store.members("x") == {"c": {"ok": True}}
        store.remove("x", "c")
    finally:
        presence.reset_store()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(20)
async def test_a_connection_is_present_while_open(token):
    comm = communicator("/ws/echo/", token=token)
    await comm.connect()
    ready = await recv(comm)
    conn_id = ready["payload"]["connection_id"]
    members = await sync_to_async(presence.room_members)(presence.ALL)
    assert members[conn_id]["endpoint"] == "echo"
    await comm.disconnect()
    members = await sync_to_async(presence.room_members)(presence.ALL)
    assert conn_id not in members


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(20)
async def test_vanished_connection_leaves_presence_after_ttl(token, settings):
    """A server that dies cannot clean up: the TTL does it (heartbeat stops)."""
    settings.PRESENCE_TTL = 0.5
    comm = communicator("/ws/echo/", token=token)
    await comm.connect()
    conn_id = (await recv(comm))["payload"]["connection_id"]
    # Freeze the connection's heartbeat, as if its server process had died.
    store = presence.get_store()
    assert conn_id in store.members(presence.ALL)
    import asyncio

    await asyncio.sleep(0.7)
    assert conn_id not in store.members(presence.ALL)
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(20)
async def test_rooms_entered_count_as_active_rooms(token):
    from channels.testing import WebsocketCommunicator

    from tests.realtime.toolkit_consumer import application

    comm = WebsocketCommunicator(application, f"/ws/toolkit/?token={token}")
    await comm.connect()
    await recv(comm)
    stats = presence.presence_stats()
    assert stats["active_rooms"] == 1 and stats["by_endpoint"] == {"toolkit": 1}
    await comm.disconnect()
    assert presence.presence_stats()["total_connections"] == 0


def test_presence_values_are_json(redis_client, clock):
    store = RedisPresence(redis_client, "test-json:", clock=clock)
    store.set("r", "c", {"nickname": "Zoë"}, ttl=5)
    raw = redis_client.hget("test-json:presence:r", "c")
    assert json.loads(raw)[1] == {"nickname": "Zoë"}
    store.remove("r", "c")


def test_stores_read_the_toolkit_clock_by_default(fake_clock, redis_client):
    prefix = f"test-{uuid.uuid4().hex}:"
    for store in (LocalPresence(), RedisPresence(redis_client, prefix)):
        store.set("room", "c1", {"n": 1}, ttl=10)
        fake_clock.advance(9.9)
        assert store.members("room") == {"c1": {"n": 1}}
        fake_clock.advance(0.1)  # only the installed clock moved
        assert store.members("room") == {}


def test_every_connection_is_spread_over_the_all_shards(redis_client, clock):
    """``ALL`` is ``ALL_SHARDS`` hashes (every connect and heartbeat writes it: on a
    Redis Cluster one hash would be one node's load), read back as one room."""
    prefix = f"test-{uuid.uuid4().hex}:"
    store = RedisPresence(redis_client, prefix, clock=clock)
    for n in range(200):
        store.set(presence.ALL, f"c{n}", {"n": n}, ttl=10)
    sizes = [
        redis_client.hlen(f"{prefix}presence:{presence.ALL}:{shard}")
        for shard in range(presence.ALL_SHARDS)
    ]
    assert sum(sizes) == 200 and max(sizes) < 40 and min(sizes) > 0
    assert not redis_client.exists(f"{prefix}presence:{presence.ALL}")
    members = store.members(presence.ALL)
    assert members == {f"c{n}": {"n": n} for n in range(200)}
    store.remove(presence.ALL, "c7")
    assert "c7" not in store.members(presence.ALL)
    clock.now += 11  # every entry expired: pruned from every shard on read
    assert store.members(presence.ALL) == {}
    assert (
        sum(
            redis_client.hlen(f"{prefix}presence:{presence.ALL}:{shard}")
            for shard in range(presence.ALL_SHARDS)
        )
        == 0
    )


async def test_the_event_loops_door_reads_and_writes_the_same_shards(clock):
    import redis.asyncio

    prefix = f"test-{uuid.uuid4().hex}:"
    client = redis.asyncio.Redis.from_url(redis_url())
    store = RedisPresence(None, prefix, clock=clock, aclient=lambda: client)
    try:
        for n in range(40):
            await store.aset_many(f"c{n}", {presence.ALL: {"n": n}, "hall": {}}, 10)
        assert len(await store.amembers(presence.ALL)) == 40
        assert len(await store.amembers("hall")) == 40
        await store.aremove_many("c3", [presence.ALL, "hall"])
        everyone = await store.amembers(presence.ALL)
        assert len(everyone) == 39 and "c3" not in everyone
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ["cache", "redis"])
async def test_a_posted_refresh_is_written_without_being_awaited(kind, clock):
    """The heartbeat's refresh (``post_many``): the local store writes at once; Redis
    hands back the write's future, and ``settled`` waits for every posted write."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url())
    if kind == "cache":
        store = LocalPresence(clock=clock)
    else:
        prefix = f"test-{uuid.uuid4().hex}:"
        store = RedisPresence(None, prefix, clock=clock, aclient=lambda: client)
    try:
        assert store.post_many("c1", {}, 10) is None  # nothing to write
        posted = [store.post_many(f"c{n}", {"hall": {"n": n}}, 10) for n in range(5)]
        if kind == "cache":
            assert posted == [None] * 5
        else:
            assert not any(future.done() for future in posted)
        await store.settled()
        assert all(future is None or future.result() is None for future in posted)
        assert len(await store.amembers("hall")) == 5
    finally:
        await client.aclose()
