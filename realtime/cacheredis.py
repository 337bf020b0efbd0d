"""The Redis behind Django's cache, for code on the event loop.

Presence and the shared rate limits keep their data where Django's cache is, so the
synchronous side (DRF views in their threads, the admin, ``presence_stats``) reads
and counts the same keys with the cache's blocking client. On the event loop the
same keys are reached through redis-py's asyncio client: the process's own pool
(``realtime.redisconn.async_redis``) when the cache names ``REDIS_URL``, as the
settings make it, else a client of this loop's for the cache's address.

A Redis that is down, slow past ``REDIS_SOCKET_TIMEOUT``, a pool with no free
connection within ``REDIS_POOL_TIMEOUT``, or a cluster between a node's loss and its
replica's takeover becomes ``Unavailable``: the socket edge
answers it with the retryable error (PROTOCOL §2, ``retry_after``), the connect
path closes 4011.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.errors import Unavailable
from realtime.looplocal import per_loop
from realtime.redisconn import async_redis, new_async_client, node_url, redis_url

logger = logging.getLogger("realtime.redis")

# What "Redis cannot answer now" looks like: refused, cut, timed out, pool exhausted
# (``MaxConnectionsError`` is a ``ConnectionError``); on a cluster also a node's
# slots without an owner during a failover (CLUSTERDOWN, MASTERDOWN, a slot the map
# does not cover) and TRYAGAIN while a slot migrates.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    SlotNotCoveredError,
    TryAgainError,
)


def cache_redis_url(cache: Any) -> str | None:
    """The Redis address ``cache`` writes to, or ``None`` for a cache without Redis."""
    backend = getattr(cache, "_cache", None)
    servers = getattr(cache, "_servers", None)
    if backend is None or not hasattr(backend, "get_client") or not servers:
        return None
    return servers[0]  # Django's RedisCache writes to the first


_other_clients = per_loop(dict)  # this loop's clients of addresses not REDIS_URL


def loop_client(url: str) -> Any:
    """This event loop's asyncio client of the Redis at ``url``."""
    own = redis_url()
    if own and url in (own, node_url(own)):
        return async_redis()
    clients = _other_clients()
    client = clients.get(url)
    if client is None:
        client = clients[url] = new_async_client(url)
    return client


@contextmanager
def unavailable_when_down(what: str) -> Iterator[None]:
    """Turn Redis failing to answer inside the block into ``Unavailable``."""
    try:
        yield
    except REDIS_DOWN as exc:
        logger.warning("%s: Redis unavailable: %s", what, exc)
        raise Unavailable() from exc
