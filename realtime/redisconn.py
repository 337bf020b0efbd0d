"""The process's async Redis client: one connection pool per event loop, from settings.

``REDIS_URL`` names one Redis (``redis://``, ``rediss://``, ``unix://``) or a Redis
Cluster (``redis+cluster://host:port``: any one node, the client finds the others).
Code on the event loop talks to Redis through ``async_redis()`` only, never through
redis-py's blocking client: one slow round trip must not stall every socket of the
process. The pool is bounded (``REDIS_POOL_SIZE``); a call that cannot get a
connection within ``REDIS_POOL_TIMEOUT`` fails with redis-py's ``ConnectionError``,
which callers turn into a retryable answer (docs/operations.md).

On a cluster redis-py keeps a pool per node that fails at once when it is full
(``MaxConnectionsError``, no wait). The cluster client here waits instead: at most
``REDIS_POOL_SIZE`` calls (a command or a pipeline) are in flight per client, the
next waits up to ``REDIS_POOL_TIMEOUT`` for one to end, then fails with
``MaxConnectionsError`` (a ``ConnectionError``). A call holds at most one connection
per node, so no node's pool (as large) is ever the one that refuses.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import MaxConnectionsError

from realtime.conf import realtime_settings
from realtime.looplocal import per_loop

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
SCHEMES = ("redis://", "rediss://", "unix://", *CLUSTER_SCHEMES)


def is_cluster(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster."""
    return url.startswith(CLUSTER_SCHEMES)


def node_url(url: str) -> str:
    """``url`` as redis-py reads it (the ``+cluster`` marker dropped)."""
    return url.replace("+cluster://", "://", 1) if is_cluster(url) else url


def node_address(url: str, host: str, port: int) -> str:
    """The URL of one node of the cluster ``url`` names (same scheme, credentials
    and options), for a connection of its own to that node."""
    parts = urlsplit(node_url(url))
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


# Set while a call holds its turn: redis-py's pipeline sends a redirected command
# again through the client, inside the pipeline's turn (it must not wait for itself).
_in_turn: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "redis_in_turn", default=False
)


class BoundedRedisCluster(RedisCluster):
    """A cluster client whose calls wait for a turn (see the module's doc)."""

    def bound(self, size: int, timeout: float) -> BoundedRedisCluster:
        self.turns = asyncio.Semaphore(size)
        self.turn_timeout = timeout
        return self

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if _in_turn.get():
            yield
            return
        try:
            async with asyncio.timeout(self.turn_timeout):
                await self.turns.acquire()
        except TimeoutError:
            raise MaxConnectionsError(
                f"no free Redis connection within {self.turn_timeout:g} s"
            ) from None
        token = _in_turn.set(True)
        try:
            yield
        finally:
            _in_turn.reset(token)
            self.turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:  # refused the way redis-py refuses it
            return super().pipeline(transaction, shard_hint)
        return BoundedPipeline(self, transaction)


class BoundedPipeline(ClusterPipeline):
    """A cluster pipeline that runs in one turn of its client."""

    async def execute(self, *args: Any, **kwargs: Any) -> list[Any]:
        async with self.cluster_client.turn():
            return await super().execute(*args, **kwargs)


def redis_url() -> str:
    """The configured ``REDIS_URL``; empty when the process runs without Redis."""
    return getattr(settings, "REDIS_URL", "") or ""


def new_async_client(url: str, **options: Any) -> Any:
    """A ``redis.asyncio`` client for ``url`` (a cluster client for a cluster URL)
    with the pool and timeouts of the settings; ``options`` go to the client."""
    conf = realtime_settings
    timeouts = {
        "socket_timeout": conf.REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": conf.REDIS_SOCKET_TIMEOUT,
    }
    if is_cluster(url):
        client = BoundedRedisCluster.from_url(
            node_url(url), max_connections=conf.REDIS_POOL_SIZE, **timeouts, **options
        )
        return client.bound(conf.REDIS_POOL_SIZE, conf.REDIS_POOL_TIMEOUT)
    from redis.asyncio import BlockingConnectionPool, Redis

    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=conf.REDIS_POOL_SIZE,
        timeout=conf.REDIS_POOL_TIMEOUT,
        **timeouts,
        **options,  # connection options (client_name, ...) live on the pool
    )
    return Redis(connection_pool=pool)


def _loop_client() -> Any:
    url = redis_url()
    if not url:
        raise RuntimeError("async_redis() needs REDIS_URL")
    return new_async_client(url)


async_redis = per_loop(_loop_client)  # this event loop's client (one pool)
