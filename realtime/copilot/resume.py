"""The delta log of each query, kept in Django's cache so a reconnect can resume it.

A running query writes every ``response.delta`` (numbered from 1) and finally its
``response`` here before sending them. The log is bound to the user, lives
``COPILOT_RESUME_TTL`` seconds (120) after its last write, and is shared by every
server process when the cache is Redis, so ``query.resume`` works on any of them.

Layout: one meta key ``{user_id, count, final}`` rewritten on every write (its TTL
restarts each time) and one key per delta, written once. Delta keys are kept for the
longest a query may run plus the TTL, so they always outlive the meta key that points
at them; readers go through the meta key and never see a half-expired log.

Writes are batched: deltas are flushed ``delay`` seconds after the first unflushed one
(one ``set_many`` and one ``set`` per batch instead of two cache round trips per token),
and always before the final response. On Redis they are made off the event loop, in
order (``realtime.writebehind``); ``DeltaLog.drained()`` waits for them. Readers only
see what the meta key counts, so a follower never skips a delta; it may see it up to
``delay`` later.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache
from django.core.cache import cache as default_cache

from realtime.copilot.conf import copilot_settings
from realtime.writebehind import WriteBehind

FLUSH_DELAY = 0.05  # seconds a delta may wait to be batched with the next ones
MAX_BATCH = 64  # deltas; a fast stream is flushed at least this often


def resume_ttl() -> int:
    return max(1, math.ceil(copilot_settings.COPILOT_RESUME_TTL))


def query_timeout() -> float:
    return copilot_settings.COPILOT_QUERY_TIMEOUT


def _meta_key(query_id: str) -> str:
    return f"copilot:log:{query_id}"


def _delta_key(query_id: str, index: int) -> str:
    return f"copilot:log:{query_id}:{index}"


class DeltaLog:
    """The writer: owned by the one task that runs the query.

    ``delay=0`` writes through (each delta at once); otherwise ``append`` must be called
    from the event loop, which runs the delayed flush.
    """

    def __init__(
        self,
        *,
        query_id: str,
        user_id: Any,
        ttl: int | None = None,
        delay: float = 0.0,
        cache: BaseCache | None = None,
    ) -> None:
        self.query_id = query_id
        self.user_id = user_id
        self.ttl = ttl or resume_ttl()
        # Delta keys must outlive the meta key that is refreshed until the query ends.
        self.delta_ttl = self.ttl + math.ceil(query_timeout()) + 60
        self.delay = delay
        self.cache = cache or default_cache
        # On Redis the writes go in a thread, in order: never a round trip on the loop.
        self.writes = WriteBehind(self.cache)
        self.count = 0  # deltas appended
        self.final: dict[str, Any] | None = None
        self._pending: dict[str, str] = {}
        self._timer: asyncio.TimerHandle | None = None

    def _write_meta(self) -> None:
        meta = {"user_id": self.user_id, "count": self.count, "final": self.final}
        self.writes.write(self.cache.set, _meta_key(self.query_id), meta, self.ttl)

    def open(self) -> None:
        self._write_meta()

    def append(self, delta: str) -> int:
        """Store one delta (now, or within ``delay`` s); its index (1, 2, ...)."""
        self.count += 1
        self._pending[_delta_key(self.query_id, self.count)] = delta
        if self.delay <= 0 or len(self._pending) >= MAX_BATCH:
            self.flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.delay, self.flush)
        return self.count

    def flush(self) -> None:
        """Write the pending deltas, then the count that makes them visible."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self.writes.write(self.cache.set_many, self._pending, self.delta_ttl)
            self._pending = {}
            self._write_meta()

    async def drained(self) -> None:
        """What was flushed so far is in the cache (readable by any process)."""
        await self.writes.drained()

    def close(self, final: dict[str, Any]) -> None:
        """Store the final ``response`` payload: the log is complete."""
        self.flush()
        self.final = final
        self._write_meta()


@dataclass(frozen=True)
class LogView:
    count: int  # deltas written so far
    deltas: list[str]  # those after the ``after`` index asked for, in order
    final: dict[str, Any] | None  # the final response payload, once written


def delta_log_read(
    *,
    query_id: str,
    user_id: Any,
    after: int = 0,
    upto: int | None = None,
    cache: BaseCache | None = None,
) -> LogView | None:
    """Deltas ``after+1 .. upto`` (default: all) of the user's query; ``None`` when
    the log is unknown, expired or another user's."""
    store = cache or default_cache
    meta = store.get(_meta_key(query_id))
    if meta is None or meta["user_id"] != user_id:
        return None
    count = meta["count"] if upto is None else min(upto, meta["count"])
    keys = [_delta_key(query_id, index) for index in range(after + 1, count + 1)]
    found = store.get_many(keys) if keys else {}
    if len(found) != len(keys):  # evicted under memory pressure: cannot resume
        return None
    return LogView(
        count=meta["count"],
        deltas=[found[key] for key in keys],
        final=meta["final"] if upto is None else None,
    )
