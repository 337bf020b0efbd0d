"""Cache writes from the event loop, made off it: in a worker thread, in order.

Django's cache is synchronous: on Redis every call is a blocking round trip, and on
the event loop one slow round trip stalls every socket of the process. Writers that
keep a stream's state in the cache while it runs (the copilot's delta log, the
camera's latest frames) hand their writes to a ``WriteBehind``: each write runs in a
thread (``asyncio.to_thread``), one after the other, so a later write never lands
before an earlier one; ``drained()`` waits until everything handed over is written.

On the local-memory cache (one process, nothing to wait for) and outside an event
loop a write is made at once, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, cache, caches
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger("realtime.writebehind")


class WriteBehind:
    """One writer's ordered queue of cache writes."""

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache
        self.last: asyncio.Task | None = None

    def _at_once(self) -> bool:
        # ``django.core.cache.cache`` is a proxy: the backend is the default one.
        backend = caches[DEFAULT_CACHE_ALIAS] if self.cache is cache else self.cache
        if isinstance(backend, LocMemCache):
            return True
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not on a loop: nothing to stall
            return True
        return False

    def write(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """``call(*args, **kwargs)`` (a method of the cache), after the writes
        handed over before it. A failure is logged: the cache is a best-effort copy."""
        if self._at_once():
            call(*args, **kwargs)
            return
        before = self.last

        async def run() -> None:
            if before is not None:
                await asyncio.wait([before])  # its outcome was logged by itself
            try:
                await asyncio.to_thread(call, *args, **kwargs)
            except Exception:
                logger.exception("cache write failed")

        self.last = asyncio.get_running_loop().create_task(run())

    async def drained(self) -> None:
        """Everything handed over so far is written (or its failure logged)."""
        if self.last is not None:
            await asyncio.wait([self.last])
