"""Rate limits: a cache-backed fixed window shared across processes, and a local one.

``CacheRateLimiter`` counts in Django's cache (local memory alone, Redis when scaled
out), so every connection of a user on every server process draws from one budget.
``LocalRateLimiter`` is for per-connection throttles (pings, typing) where sharing
would only cost a round trip.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import BaseCache
from django.core.cache import cache as default_cache

Clock = Callable[[], float]


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # seconds until the next hit would be allowed (0 when allowed)


class CacheRateLimiter:
    """``limit`` hits per ``window`` seconds per key, in fixed windows.

    Fixed windows keep it to one atomic ``incr`` per hit on any cache backend; the
    price (up to 2x the limit across a window boundary) is documented in
    docs/protocol.md.
    """

    def __init__(
        self,
        *,
        name: str,
        limit: int,
        window: float,
        cache: BaseCache | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.name = name
        self.limit = int(limit)
        self.window = float(window)
        self.cache = cache or default_cache
        self.clock = clock

    def _window(self, now: float) -> tuple[int, float]:
        index = math.floor(now / self.window)
        return index, (index + 1) * self.window - now

    def peek(self, key: str) -> RateDecision:
        """The state for ``key`` without counting a hit."""
        now = self.clock()
        index, left = self._window(now)
        used = self.cache.get(f"rl:{self.name}:{key}:{index}", 0)
        return self._decision(used, left, counted=False)

    def hit(self, key: str) -> RateDecision:
        """Count one hit for ``key`` and say whether it is allowed."""
        now = self.clock()
        index, left = self._window(now)
        cache_key = f"rl:{self.name}:{key}:{index}"
        # The key outlives its window by a second so a late incr never recreates it.
        timeout = max(1, math.ceil(left) + 1)
        self.cache.add(cache_key, 0, timeout)
        try:
            used = self.cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            self.cache.add(cache_key, 1, timeout)
            used = 1
        return self._decision(used, left, counted=True)

    def _decision(self, used: int, left: float, *, counted: bool) -> RateDecision:
        allowed = used <= self.limit if counted else used < self.limit
        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - used),
            retry_after=0.0 if allowed else round(left, 3),
        )


class LocalRateLimiter:
    """A sliding-window limit held in this object (one connection's throttle)."""

    def __init__(self, *, limit: int, window: float, clock: Clock = time.monotonic):
        self.limit = int(limit)
        self.window = float(window)
        self.clock = clock
        self._hits: deque[float] = deque()

    def take(self) -> float | None:
        """Count one hit if allowed and return ``None``; else the seconds to wait.

        The per-frame check of every socket: no object made when allowed.
        """
        now = self.clock()
        horizon = now - self.window
        hits = self._hits
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(round(hits[0] + self.window - now, 3), 0.001)
        hits.append(now)
        return None
