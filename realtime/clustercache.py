"""Django's Redis cache on a Redis Cluster (``REDIS_URL=redis+cluster://host:port``).

Django's ``RedisCache`` talks to one server (or writes to the first of several): on a
cluster a key whose slot lives on another node answers ``MOVED``. This backend keeps
Django's own serialisation and semantics and hands every call to redis-py's
``RedisCluster``, which routes each key to its node. The multi-key calls, which
Django sends as one ``MGET``/``MSET``/``DEL``, are split by slot: keys of a cache
hash anywhere, and a multi-key command across slots is refused (``CROSSSLOT``).

django-redis has no cluster client; this is the small part of it the project needs.

    CACHES = {"default": {
        "BACKEND": "realtime.clustercache.RedisClusterCache",
        "LOCATION": "redis+cluster://10.0.0.5:6379",
    }}
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from realtime.redisconn import node_url


class RedisClusterCacheClient(RedisCacheClient):
    """One ``redis.cluster.RedisCluster`` (its own pool per node) for every call."""

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._cluster: Any = None

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        if self._cluster is None:
            from redis.cluster import RedisCluster

            options = dict(self._pool_options)
            options.pop("parser_class", None)  # the cluster's nodes pick their own
            self._cluster = RedisCluster.from_url(node_url(self._servers[0]), **options)
        return self._cluster

    def get_many(self, keys: Any) -> dict:
        keys = list(keys)
        values = self.get_client().mget_nonatomic(keys)
        return {
            key: self._serializer.loads(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    def set_many(self, data: dict, timeout: int | None) -> None:
        if timeout == 0:  # Django's meaning: expired at once
            self.delete_many(data)
            return
        # One SET per key in a pipeline the cluster client splits by node.
        pipeline = self.get_client(write=True).pipeline()
        for key, value in data.items():
            pipeline.set(key, self._serializer.dumps(value), ex=timeout)
        pipeline.execute()

    def delete_many(self, keys: Any) -> None:
        self.get_client(write=True).delete(*keys)  # split by slot by redis-py


class RedisClusterCache(RedisCache):
    """``RedisCache`` whose client is a ``RedisClusterCacheClient``."""

    def __init__(self, server: str | list[str], params: dict) -> None:
        super().__init__(server, params)
        self._class = RedisClusterCacheClient
