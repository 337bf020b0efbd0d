"""Presence and shared rate limits on the event loop go through Redis' asyncio client.

A Redis that is down, slow or out of pool connections costs the socket that needed it
a retryable error (or, while connecting, a 4011 close), never the other sockets of
the process and never a socket dropped without a code. Tests that stop or slow Redis
start a ``redis-server`` of their own on a free loopback port and stop it by its PID.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
import uuid

import pytest
import redis
import redis.asyncio
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from pydantic import Field

from realtime import presence
from realtime.cacheredis import loop_client
from realtime.connection import connections, open_consumers
from realtime.consumers import EnvelopeConsumer
from realtime.presence import ALL, RedisPresence
from realtime.protocol import StrictModel
from realtime.ratelimit import CacheRateLimiter
from scripts.services import free_port, start_redis_server, stop_process
from tests.conftest import closed_with, recv_type, send
from tests.services import redis_url, unavailable


class Room(StrictModel):
    room: str = Field(min_length=1, max_length=50)


class RedisRooms(EnvelopeConsumer):
    """Each frame needs Redis: entering a room, reading one, drawing on a budget."""

    endpoint = "redis_rooms"
    auth_required = False
    messages = {"room.enter": Room, "room.read": Room, "quota.take": None}

    async def on_connect(self) -> None:
        await self.send_frame("hello", {"conn": self.conn_id})

    async def on_room_enter(self, payload: Room, envelope) -> None:
        await self.enter_room(payload.room)
        await self.reply(envelope, "room.entered", {"room": payload.room})

    async def on_room_read(self, payload: Room, envelope) -> None:
        members = await presence.aroom_members(payload.room)
        await self.reply(envelope, "room.members", {"conns": sorted(members)})

    async def on_quota_take(self, payload, envelope) -> None:
        limiter = CacheRateLimiter(name="t", limit=2, window=60)
        budget = await limiter.ahit("k")
        await self.reply(envelope, "quota", {"remaining": budget.remaining})


def rooms_socket() -> WebsocketCommunicator:
    return WebsocketCommunicator(RedisRooms.as_asgi(), "/ws/redis-rooms/")


async def connected(comm: WebsocketCommunicator) -> str:
    ok, _ = await comm.connect(timeout=3)
    assert ok
    return (await recv_type(comm, "hello"))["payload"]["conn"]


async def ping_round_trip(comm: WebsocketCommunicator, nonce: str) -> float:
    started = time.perf_counter()
    await send(comm, "ping", {"n": nonce}, request_id=nonce)
    frame = await recv_type(comm, "pong", timeout=3)
    assert frame["payload"] == {"n": nonce}
    return time.perf_counter() - started


@pytest.fixture
def own_redis(tmp_path):
    """A ``redis-server`` of this test's own: ``(url, process)``; stopped by PID."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    port = free_port()
    process = start_redis_server(tmp_path, port)
    yield f"redis://127.0.0.1:{port}/0", process
    stop_process(process)


def use_redis_cache(settings, url: str) -> str:
    """Django's cache (so presence and the shared limits) on the Redis at ``url``;
    the hub stays in this process (no ``REDIS_URL``)."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
        }
    }
    presence.reset_store()
    return prefix


@pytest.fixture
async def close_clients():
    """Close this loop's asyncio clients the test made (their sockets go with it)."""
    urls: list[str] = []
    yield urls
    for url in urls:
        await loop_client(url).aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------- stores
async def test_async_presence_is_shared_by_two_processes_and_the_sync_side():
    """Two processes' asyncio clients write and read one room; the sync client of a
    DRF view reads the same hash."""
    url = redis_url()
    prefix = f"test-{uuid.uuid4().hex}:"
    clock = Clock()
    client_a = redis.asyncio.Redis.from_url(url)
    client_b = redis.asyncio.Redis.from_url(url)
    sync_client = redis.Redis.from_url(url)
    a = RedisPresence(sync_client, prefix, clock=clock, aclient=lambda: client_a)
    b = RedisPresence(sync_client, prefix, clock=clock, aclient=lambda: client_b)
    try:
        await a.aset_many("a1", {"room": {"n": 1}, ALL: {"rooms": ["room"]}}, 10)
        await b.aset_many("b1", {"room": {"n": 2}}, 10)
        assert await a.amembers("room") == {"a1": {"n": 1}, "b1": {"n": 2}}
        assert a.members("room") == await b.amembers("room")  # the sync door
        raw = sync_client.hget(f"{prefix}presence:room", "a1")
        assert json.loads(raw) == [1_010.0, {"n": 1}]
        assert await b.aoccupied(["room", ALL, "empty"]) == {"room", ALL}
        assert await b.aoccupied([]) == set()

        clock.now += 8
        await b.aset_many("b1", {"room": {"n": 2}}, 10)  # b1's heartbeat
        clock.now += 5  # a1's process died 13 s ago
        assert await b.aoccupied(["room", ALL]) == {"room"}
        assert await b.amembers("room") == {"b1": {"n": 2}}
        assert sync_client.hkeys(f"{prefix}presence:room") == [b"b1"]  # pruned

        await b.aremove_many("b1", ["room", ALL])
        await b.aremove_many("b1", [])
        await b.aset_many("b1", {}, 10)  # nothing to write: no round trip
        assert await a.amembers("room") == {}
    finally:
        sync_client.delete(f"{prefix}presence:room", *a._keys(ALL))
        sync_client.close()
        await client_a.aclose()
        await client_b.aclose()


async def test_writes_made_while_one_is_in_flight_share_one_pipeline():
    """A storm of joins: 300 sockets' writes (and leaves) take a few round trips
    on one connection, each caller still answered; a write alone goes at once."""
    url = redis_url()
    prefix = f"test-{uuid.uuid4().hex}:"
    client = redis.asyncio.Redis.from_url(url)
    store = RedisPresence(redis.Redis.from_url(url), prefix, aclient=lambda: client)
    pipelines = []
    real_pipeline = client.pipeline

    def counted(**kwargs):
        pipelines.append(kwargs)
        return real_pipeline(**kwargs)

    client.pipeline = counted
    try:
        await store.aset_many("alone", {"hall": {"n": 0}}, 10)
        assert len(pipelines) == 1
        await asyncio.wait_for(
            asyncio.gather(
                *(store.aset_many(f"c{i}", {"hall": {"n": i}}, 10) for i in range(300))
            ),
            10,
        )
        assert len(pipelines) <= 4  # the first alone, the rest together
        assert len(await store.amembers("hall")) == 301
        await asyncio.wait_for(
            asyncio.gather(
                *(store.aremove_many(f"c{i}", ["hall"]) for i in range(300))
            ),
            10,
        )
        assert set(await store.amembers("hall")) == {"alone"}
    finally:
        await client.delete(f"{prefix}presence:hall")
        await client.aclose()


async def test_module_functions_use_the_cache_redis(settings, close_clients):
    """``apresence_set`` & co. reach the Redis the cache names, where the sync
    ``room_members`` of the REST side finds the same entries."""
    url = redis_url()
    use_redis_cache(settings, url)
    close_clients.append(url)
    await presence.apresence_set(conn_id="c1", entries={"r": {"x": 1}, ALL: {}})
    assert presence.room_members("r") == {"c1": {"x": 1}}
    assert await presence.aroom_members("r") == {"c1": {"x": 1}}
    assert await presence.aoccupied_rooms(["r", "nobody"]) == {"r"}
    await presence.apresence_leave(conn_id="c1", rooms=["r", ALL])
    assert presence.room_members("r") == {}


async def test_the_local_store_answers_both_doors_alike():
    store = presence.get_store()
    assert isinstance(store, presence.LocalPresence)
    await store.aset_many("c1", {"r": {"x": 1}}, 10)
    assert store.members("r") == await store.amembers("r") == {"c1": {"x": 1}}
    assert await store.aoccupied(["r", "s"]) == {"r"}
    await store.aremove_many("c1", ["r"])
    assert await store.amembers("r") == {}


async def test_sync_and_async_takes_draw_from_one_budget(settings, close_clients):
    """A DRF view's ``take`` and a socket's ``atake`` count the same Redis key."""
    url = redis_url()
    use_redis_cache(settings, url)
    close_clients.append(url)
    limiter = CacheRateLimiter(name=f"both-{uuid.uuid4().hex[:6]}", limit=3, window=60)
    assert limiter.take("u") is None  # the sync door: add + incr
    assert await limiter.atake("u") is None  # INCR + EXPIRE
    hit = await limiter.ahit("u")
    assert (hit.allowed, hit.remaining) == (True, 0)
    retry_after = await limiter.atake("u")
    assert retry_after is not None and 0 < retry_after <= 60
    assert limiter.take("u") is not None  # the sync door sees it spent too
    assert limiter.peek("u").remaining == 0
    budget = await limiter.apeek("u")
    assert (budget.allowed, budget.remaining) == (False, 0)
    assert budget.retry_after == pytest.approx(retry_after, abs=1)
    key, _ = limiter._window("u")
    with redis.Redis.from_url(url) as sync_client:
        ttl = sync_client.ttl(cache.make_key(key))
    assert 0 < ttl <= 61  # the window's key expires with it
    assert (await limiter.apeek("someone else")).remaining == 3


async def test_async_takes_on_local_memory_count_in_this_process():
    limiter = CacheRateLimiter(name=f"loc-{uuid.uuid4().hex[:6]}", limit=1, window=60)
    first = await limiter.ahit("u")
    assert (first.allowed, first.remaining, first.retry_after) == (True, 0, 0.0)
    assert await limiter.atake("u") is not None
    assert (await limiter.apeek("u")).allowed is False


# ---------------------------------------------------------------------- faults
@pytest.mark.timeout(30)
async def test_an_exhausted_pool_answers_a_retryable_error_and_the_socket_lives(
    settings, own_redis, close_clients, caplog
):
    url, _ = own_redis
    settings.REDIS_POOL_SIZE = 1
    settings.REDIS_POOL_TIMEOUT = 0.2
    use_redis_cache(settings, url)
    close_clients.append(url)
    comm = rooms_socket()
    conn_id = await connected(comm)
    pool = loop_client(url).connection_pool
    held = await pool.get_connection()  # the pool's only connection
    try:
        started = time.perf_counter()
        await send(comm, "room.enter", {"room": "r"}, request_id="e1")
        error = await recv_type(comm, "error")
        waited = time.perf_counter() - started
        assert error["request_id"] == "e1"
        assert error["payload"] == {
            "code": "INTERNAL",
            "message": "temporarily unavailable, try again",
            "retry_after": 1.0,
        }
        assert 0.15 < waited < 1.5  # REDIS_POOL_TIMEOUT, not a hang
        await send(comm, "quota.take", request_id="q1")
        assert (await recv_type(comm, "error"))["payload"]["retry_after"] == 1.0
        await ping_round_trip(comm, "alive")  # the socket lives on

        # The heartbeat's refresh: logged, nothing raised, tried again next beat.
        consumer = next(c for c in open_consumers if c.conn_id == conn_id)
        with caplog.at_level(logging.WARNING, logger="realtime.consumer"):
            assert consumer.refresh_membership() is None  # posted, not awaited
            await presence.apresence_settled()
        assert "presence refresh failed" in caplog.text
    finally:
        await pool.release(held)
    await send(comm, "room.enter", {"room": "r"}, request_id="e2")
    assert (await recv_type(comm, "room.entered"))["request_id"] == "e2"
    await send(comm, "room.read", {"room": "r"})
    assert (await recv_type(comm, "room.members"))["payload"]["conns"] == [conn_id]
    await send(comm, "quota.take")
    assert (await recv_type(comm, "quota"))["payload"] == {"remaining": 1}
    await comm.disconnect()
    assert presence.room_members("r") == {}


@pytest.mark.timeout(30)
async def test_redis_stopped_new_sockets_close_4011_open_ones_get_retryable_errors(
    settings, own_redis, close_clients, caplog
):
    url, process = own_redis
    use_redis_cache(settings, url)
    close_clients.append(url)
    before = connections.count
    comm = rooms_socket()
    conn_id = await connected(comm)
    await send(comm, "room.enter", {"room": "r"})
    await recv_type(comm, "room.entered")

    stop_process(process)  # Redis is gone

    newcomer = rooms_socket()
    ok, _ = await newcomer.connect(timeout=3)
    assert ok  # accepted, then closed with a code the client retries with backoff
    assert await closed_with(newcomer) == 4011
    await newcomer.disconnect()

    await send(comm, "room.read", {"room": "r"}, request_id="r1")
    error = await recv_type(comm, "error")
    assert error["request_id"] == "r1"
    assert error["payload"]["code"] == "INTERNAL"
    assert error["payload"]["retry_after"] == 1.0
    await ping_round_trip(comm, "still-here")

    consumer = next(c for c in open_consumers if c.conn_id == conn_id)
    with caplog.at_level(logging.WARNING, logger="realtime.consumer"):
        consumer.refresh_membership()  # the heartbeat: logged, no raise
        await presence.apresence_settled()
        await comm.disconnect()  # the leave fails: logged, the disconnect completes
    assert "presence refresh failed" in caplog.text
    assert "presence leave failed" in caplog.text
    assert connections.count == before  # nothing leaked towards a 4013 "full"


@pytest.mark.timeout(30)
async def test_a_slow_redis_does_not_stall_the_other_sockets(
    settings, own_redis, close_clients
):
    """Redis holds every command for a second (``CLIENT PAUSE``, as ``DEBUG SLEEP``
    would but from a known instant): one socket's presence write waits it out,
    another socket's pings on the same event loop are answered meanwhile."""
    url, _ = own_redis
    use_redis_cache(settings, url)
    close_clients.append(url)
    slow, quick = rooms_socket(), rooms_socket()
    await connected(slow)
    await connected(quick)
    assert await ping_round_trip(quick, "warm") < 1
    async with redis.asyncio.Redis.from_url(url) as admin:
        assert await admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
    started = time.perf_counter()
    await send(slow, "room.enter", {"room": "r"})
    round_trips = [await ping_round_trip(quick, f"n{i}") for i in range(5)]
    pings_done = time.perf_counter() - started
    await recv_type(slow, "room.entered", timeout=5)
    slow_took = time.perf_counter() - started
    print(
        f"pings meanwhile: {[round(t * 1000, 1) for t in round_trips]} ms; "
        f"the enter waited {slow_took * 1000:.0f} ms"
    )
    assert slow_took > 0.7  # it did wait on the paused Redis
    assert max(round_trips) < 0.25, round_trips
    assert pings_done < slow_took - 0.5  # all five came back while it waited
    await slow.disconnect()
    await quick.disconnect()


def test_the_redis_presence_store_talks_to_the_cache_redis(settings):
    use_redis_cache(settings, redis_url())
    store = presence.get_store()
    assert isinstance(store, RedisPresence)
    assert store.prefix.startswith("t-")


async def test_the_cache_on_redis_url_shares_the_process_pool(settings):
    """The settings point the cache at ``REDIS_URL``: presence and the limits use
    the process's one pool (``async_redis``), not a client of their own."""
    from realtime.redisconn import async_redis

    url = redis_url()
    settings.REDIS_URL = url
    client = loop_client(url)
    try:
        assert client is async_redis()
        assert loop_client("redis://127.0.0.1:1/0") is loop_client(
            "redis://127.0.0.1:1/0"
        )
        assert loop_client("redis://127.0.0.1:1/0") is not client
    finally:
        await client.aclose()
        await loop_client("redis://127.0.0.1:1/0").aclose()
