"""realtime.writebehind: cache writes from the loop go to a thread, in order; on the
local-memory cache, or off a loop, at once."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from django.core.cache import caches

from realtime.writebehind import WriteBehind
from tests.services import redis_url

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def redis_cache(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url(),
            "KEY_PREFIX": f"wb-{uuid.uuid4().hex[:8]}",
        }
    }
    return caches["default"]


async def test_on_redis_writes_leave_the_loop_and_keep_their_order(redis_cache):
    loop_thread = threading.get_ident()
    threads = []
    writes = WriteBehind(redis_cache)

    def set_noting(key, value):
        threads.append(threading.get_ident())
        redis_cache.set(key, value, 30)

    for n in range(20):  # each overwrites the last: only order makes it 19
        writes.write(set_noting, "k", n)
    writes.write(redis_cache.set_many, {"a": 1, "b": 2}, 30)
    await asyncio.wait_for(writes.drained(), 10)
    assert redis_cache.get("k") == 19
    assert redis_cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
    assert loop_thread not in threads  # never a round trip on the event loop


async def test_a_failed_write_is_logged_and_the_next_ones_still_go(redis_cache, caplog):
    writes = WriteBehind(redis_cache)

    def broken():
        raise ConnectionError("redis went away")

    writes.write(broken)
    writes.write(redis_cache.set, "after", 1, 30)
    await asyncio.wait_for(writes.drained(), 10)
    assert redis_cache.get("after") == 1
    assert "cache write failed" in caplog.text


async def test_local_memory_is_written_at_once():
    from django.core.cache import cache

    writes = WriteBehind(cache)
    writes.write(cache.set, "now", 1, 30)
    assert cache.get("now") == 1 and writes.last is None
    await writes.drained()  # nothing handed over: returns at once


def test_off_a_loop_a_write_is_made_at_once(redis_cache):
    writes = WriteBehind(redis_cache)
    writes.write(redis_cache.set, "sync", 2, 30)
    assert redis_cache.get("sync") == 2 and writes.last is None
