"""The process's async Redis client: one connection pool per event loop, from settings.

``REDIS_URL`` names one Redis (``redis://``, ``rediss://``, ``unix://``) or a Redis
Cluster (``redis+cluster://host:port``: any one node, the client finds the others).
Code on the event loop talks to Redis through ``async_redis()`` only, never through
redis-py's blocking client: one slow round trip must not stall every socket of the
process. The pool is bounded (``REDIS_POOL_SIZE``); a call that cannot get a
connection within ``REDIS_POOL_TIMEOUT`` fails with redis-py's ``ConnectionError``,
which callers turn into a retryable answer (docs/operations.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

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
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(
            node_url(url), max_connections=conf.REDIS_POOL_SIZE, **timeouts, **options
        )
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
