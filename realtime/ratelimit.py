"""Rate limits on one contract: a window shared through the cache, or one held here.

Both answer ``take(key)`` (count a hit: ``None`` when allowed, else the seconds to
wait) and ``peek(key)`` (the budget as a ``RateDecision``, nothing counted), and
read time from an injectable ``timer`` (DRF throttling's idea) that defaults to the
toolkit's clock, so ``realtime.clock.installed`` moves them in tests.

``CacheRateLimiter`` counts in Django's cache (local memory alone, Redis when scaled
out), so every connection of a user on every server process draws from one budget.
On the event loop it is ``atake``/``apeek``: on Redis one pipelined round trip through
the asyncio client (``realtime.cacheredis``), on the same keys as the sync calls of
DRF's views, so both doors draw from one budget; a Redis that cannot answer raises
``Unavailable`` (retryable).
``LocalRateLimiter`` is for per-connection throttles (pings, typing) where sharing
would only cost a round trip.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django.core.cache import BaseCache
from django.core.cache import cache as default_cache

from realtime import clock
from realtime.cacheredis import cache_redis_url, loop_client, unavailable_when_down

Timer = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool  # whether a hit now would be allowed
    limit: int
    remaining: int
    retry_after: float  # seconds until the next hit would be allowed (0 when allowed)


class CacheRateLimiter:
    """``limit`` hits per ``window`` seconds per key, in fixed windows.

    Fixed windows keep it to one atomic ``incr`` per hit on any cache backend; the
    price (up to 2x the limit across a window boundary) is documented in
    docs/protocol.md. The timer is wall-clock time: every process must agree on
    which window it is.
    """

    def __init__(
        self,
        *,
        name: str,
        limit: int,
        window: float,
        cache: BaseCache | None = None,
        timer: Timer = clock.now,
    ) -> None:
        self.name = name
        self.limit = int(limit)
        self.window = float(window)
        self.cache = cache or default_cache
        self.timer = timer

    def _window(self, key: str) -> tuple[str, float]:
        """The cache key of ``key``'s current window and the seconds it has left."""
        now = self.timer()
        index = math.floor(now / self.window)
        return f"rl:{self.name}:{key}:{index}", (index + 1) * self.window - now

    def take(self, key: str = "") -> float | None:
        """Count one hit for ``key``: ``None`` if allowed, else the seconds to wait.

        A refused hit is counted too (the window's one ``incr``), which changes
        nothing: the window is spent either way.
        """
        cache_key, left = self._window(key)
        # The key outlives its window by a second so a late incr never recreates it.
        timeout = max(1, math.ceil(left) + 1)
        self.cache.add(cache_key, 0, timeout)
        try:
            used = self.cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            self.cache.add(cache_key, 1, timeout)
            used = 1
        return None if used <= self.limit else round(left, 3)

    def peek(self, key: str = "") -> RateDecision:
        """``key``'s budget without counting a hit."""
        cache_key, left = self._window(key)
        return self._decision(self.cache.get(cache_key, 0), left)

    def _decision(self, used: int, left: float) -> RateDecision:
        allowed = used < self.limit
        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - used),
            retry_after=0.0 if allowed else round(left, 3),
        )

    # The event loop's door. Django's Redis cache stores an int as itself, so the
    # sync side's ``add``/``incr``/``get`` and these read and count the same number.
    def _redis(self) -> Any:
        url = cache_redis_url(self.cache)
        return None if url is None else loop_client(url)

    async def ahit(self, key: str = "") -> RateDecision:
        """Count one hit for ``key`` on the event loop: whether it was allowed and
        the budget left after it. On Redis, ``INCR`` and ``EXPIRE`` in one pipeline."""
        redis = self._redis()
        if redis is None:  # local memory: no I/O to wait for
            retry_after = self.take(key)
            after = self.peek(key)
            return replace(
                after, allowed=retry_after is None, retry_after=retry_after or 0.0
            )
        cache_key, left = self._window(key)
        name = self.cache.make_key(cache_key)
        pipe = redis.pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, max(1, math.ceil(left) + 1))
        with unavailable_when_down(f"rate limit {self.name}"):
            used, _ = await pipe.execute()
        allowed = used <= self.limit
        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - used),
            retry_after=0.0 if allowed else round(left, 3),
        )

    async def atake(self, key: str = "") -> float | None:
        """``take`` on the event loop."""
        decision = await self.ahit(key)
        return None if decision.allowed else decision.retry_after

    async def apeek(self, key: str = "") -> RateDecision:
        """``peek`` on the event loop."""
        redis = self._redis()
        if redis is None:
            return self.peek(key)
        cache_key, left = self._window(key)
        with unavailable_when_down(f"rate limit {self.name}"):
            used = await redis.get(self.cache.make_key(cache_key))
        return self._decision(int(used or 0), left)


class LocalRateLimiter:
    """``limit`` hits per sliding ``window`` seconds per key, held in this object.

    One connection's throttle for one message type: the consumer calls ``take()``
    with no key on every frame of that type, so that path allocates nothing once the
    window's deque exists. Other keys get their own windows on first use.
    """

    # A connection holds one per throttled type it has used (bench W2 counts
    # kilobytes per socket): slots keep each to a fraction of a __dict__'s size.
    __slots__ = ("limit", "window", "timer", "_hits", "_keyed")

    def __init__(
        self, *, limit: int, window: float, timer: Timer = clock.monotonic
    ) -> None:
        self.limit = int(limit)
        self.window = float(window)
        self.timer = timer
        self._hits: deque[float] = deque()  # the unnamed key's, the common case
        self._keyed: dict[str, deque[float]] | None = None

    def _hits_of(self, key: str) -> deque[float]:
        if self._keyed is None:
            self._keyed = {}
        hits = self._keyed.get(key)
        if hits is None:
            hits = self._keyed[key] = deque()
        return hits

    def take(self, key: str = "") -> float | None:
        """Count one hit for ``key`` if allowed and return ``None``; else the seconds
        to wait (nothing counted).

        The per-frame check of every socket: no object made when allowed.
        """
        now = self.timer()
        hits = self._hits if not key else self._hits_of(key)
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(round(hits[0] + self.window - now, 3), 0.001)
        hits.append(now)
        return None

    def peek(self, key: str = "") -> RateDecision:
        """``key``'s budget without counting a hit."""
        now = self.timer()
        horizon = now - self.window
        hits = self._hits if not key else (self._keyed or {}).get(key, ())
        live = [t for t in hits if t > horizon]
        allowed = len(live) < self.limit
        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - len(live)),
            retry_after=(
                0.0 if allowed else max(round(live[0] + self.window - now, 3), 0.001)
            ),
        )
