"""Rate limiters with an injected clock."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache

from realtime.ratelimit import CacheRateLimiter, LocalRateLimiter


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_ten_allowed_then_limited_until_the_window_resets(clock):
    limiter = CacheRateLimiter(name="t", limit=10, window=60, clock=clock)
    decisions = [limiter.hit("user-1") for _ in range(12)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False, False]
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    assert decisions[10].retry_after == pytest.approx(20.0)  # 1,000,000 % 60 == 40
    clock.now += 19.9
    assert not limiter.hit("user-1").allowed
    clock.now += 0.2  # into the next window
    fresh = limiter.hit("user-1")
    assert fresh.allowed and fresh.remaining == 9


def test_keys_are_independent_and_peek_does_not_count(clock):
    limiter = CacheRateLimiter(name="t", limit=2, window=10, clock=clock)
    assert limiter.hit("a").allowed and limiter.hit("a").allowed
    assert not limiter.hit("a").allowed
    assert limiter.peek("b").remaining == 2
    assert limiter.hit("b").remaining == 1
    assert limiter.peek("b").remaining == 1
    assert not limiter.peek("a").allowed


def test_limiters_share_counts_through_the_cache(clock):
    shared = LocMemCache("shared-rl", {})
    one = CacheRateLimiter(name="q", limit=3, window=60, cache=shared, clock=clock)
    two = CacheRateLimiter(name="q", limit=3, window=60, cache=shared, clock=clock)
    assert one.hit("u").allowed and two.hit("u").allowed and one.hit("u").allowed
    assert not two.hit("u").allowed


def test_counter_expiring_between_add_and_incr(clock, monkeypatch):
    limiter = CacheRateLimiter(name="t", limit=5, window=60, clock=clock)
    cache = caches["default"]
    monkeypatch.setattr(cache, "add", lambda *a, **k: False)
    real_incr = cache.incr

    def vanished(key, delta=1):
        monkeypatch.setattr(cache, "incr", real_incr)
        raise ValueError("gone")

    monkeypatch.setattr(cache, "incr", vanished)
    decision = limiter.hit("u")
    assert decision.allowed and decision.remaining == 4


def test_local_limiter_sliding_window(clock):
    limiter = LocalRateLimiter(limit=3, window=1.0, clock=clock)
    # take(): None when allowed (and counted), else the seconds to wait.
    assert [limiter.take() is None for _ in range(4)] == [True, True, True, False]
    refused = limiter.take()
    assert refused == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.take() is None
