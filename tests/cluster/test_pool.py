"""The event loop's cluster client: a full pool waits (``REDIS_POOL_TIMEOUT``) as
the single Redis's does, and a cluster between owners is a retryable error."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    MaxConnectionsError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from realtime.cacheredis import unavailable_when_down
from realtime.errors import Unavailable
from realtime.redisconn import new_async_client
from tests.cluster.test_relay import slot_owners

pytestmark = pytest.mark.timeout(60)


async def blocked_clients(port: int) -> int:
    node = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        return int((await node.info("clients"))["blocked_clients"])
    finally:
        await node.aclose()


async def holding_the_pool(client, cluster, key: str, seconds: float):
    """A BLPOP that holds the client's one connection for ``seconds``, started."""
    from redis.crc import key_slot

    port = (await slot_owners(cluster.ports[0]))[key_slot(key.encode())]
    before = await blocked_clients(port)
    task = asyncio.ensure_future(client.blpop([key], timeout=seconds))
    deadline = time.monotonic() + 5
    while await blocked_clients(port) == before:
        assert time.monotonic() < deadline, "the BLPOP never blocked"
    return task


async def test_a_full_pool_waits_for_a_connection_then_fails_retryably(
    redis_cluster, settings
):
    settings.REDIS_POOL_SIZE = 1
    settings.REDIS_POOL_TIMEOUT = 2.0
    tag = uuid.uuid4().hex[:8]
    client = new_async_client(redis_cluster.url)
    try:
        # The one connection is busy for 0.5 s: the next call waits for it
        # (redis-py's own cluster pool would refuse at once).
        holder = await holding_the_pool(client, redis_cluster, f"{{{tag}}}q", 0.5)
        started = time.monotonic()
        assert await client.set(f"{{{tag}}}k", "v") is True
        assert time.monotonic() - started > 0.2
        assert await holder is None
        # A pipeline waits its turn the same way.
        holder = await holding_the_pool(client, redis_cluster, f"{{{tag}}}q", 0.5)
        pipe = client.pipeline(transaction=False)
        pipe.get(f"{{{tag}}}k")
        pipe.incr(f"{{{tag}}}n")
        assert await pipe.execute() == [b"v", 1]
        await holder

        # Busy past REDIS_POOL_TIMEOUT: the call fails, as "Redis unavailable".
        settings.REDIS_POOL_TIMEOUT = 0.2
        client2 = new_async_client(redis_cluster.url)
        try:
            holder = await holding_the_pool(client2, redis_cluster, f"{{{tag}}}q", 1)
            started = time.monotonic()
            with pytest.raises(Unavailable):
                with unavailable_when_down("test"):
                    await client2.get(f"{{{tag}}}k")
            assert 0.15 < time.monotonic() - started < 0.9
            await holder
        finally:
            await client2.aclose()

        # A call made inside another's turn (redis-py's pipeline sends redirected
        # commands again through the client) does not wait for itself.
        async with client.turn():
            assert await client.get(f"{{{tag}}}k") == b"v"
        with pytest.raises(RedisClusterException):  # refused as redis-py does
            client.pipeline(shard_hint="x")
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "error",
    [
        ClusterDownError("The cluster is down"),
        MasterDownError("Link with MASTER is down"),
        TryAgainError("Multiple keys request during rehashing of slot"),
        SlotNotCoveredError('Slot "5" is not covered by the cluster.'),
        MaxConnectionsError("no free Redis connection within 1 s"),
    ],
)
def test_a_cluster_between_owners_is_redis_unavailable(error):
    with pytest.raises(Unavailable):
        with unavailable_when_down("test"):
            raise error
