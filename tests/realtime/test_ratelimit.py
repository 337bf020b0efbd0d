"""Both rate limiters on their one contract, with an injected or installed clock."""

from __future__ import annotations

import sys
import tracemalloc

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache

from realtime.clock import ManualClock
from realtime.ratelimit import CacheRateLimiter, LocalRateLimiter, RateDecision


@pytest.fixture
def clock():
    return ManualClock(now=1_000_000.0, monotonic=1_000_000.0)


def cache_limiter(clock: ManualClock, **options) -> CacheRateLimiter:
    return CacheRateLimiter(timer=clock.now, **options)


def local_limiter(clock: ManualClock, **options) -> LocalRateLimiter:
    return LocalRateLimiter(timer=clock.monotonic, **options)


def test_ten_allowed_then_limited_until_the_window_resets(clock):
    limiter = cache_limiter(clock, name="t", limit=10, window=60)
    remaining, refusals = [], []
    for _ in range(12):
        retry_after = limiter.take("user-1")
        if retry_after is None:
            remaining.append(limiter.peek("user-1").remaining)
        else:
            refusals.append(retry_after)
    assert len(remaining) == 10 and len(refusals) == 2
    assert remaining == list(range(9, -1, -1))
    assert refusals[0] == pytest.approx(20.0)  # 1,000,000 % 60 == 40
    clock.advance(19.9)
    assert limiter.take("user-1") is not None
    clock.advance(0.2)  # into the next window
    assert limiter.take("user-1") is None
    assert limiter.peek("user-1").remaining == 9


def test_keys_are_independent_and_peek_does_not_count(clock):
    limiter = cache_limiter(clock, name="t", limit=2, window=10)
    assert limiter.take("a") is None and limiter.take("a") is None
    assert limiter.take("a") is not None
    assert limiter.peek("b").remaining == 2
    assert limiter.take("b") is None and limiter.peek("b").remaining == 1
    assert limiter.peek("b").remaining == 1
    assert not limiter.peek("a").allowed


def test_peek_says_when_a_spent_window_ends(clock):
    limiter = cache_limiter(clock, name="t", limit=1, window=60)
    assert limiter.peek("u") == RateDecision(
        allowed=True, limit=1, remaining=1, retry_after=0.0
    )
    limiter.take("u")
    assert limiter.peek("u") == RateDecision(
        allowed=False, limit=1, remaining=0, retry_after=20.0
    )


def test_limiters_share_counts_through_the_cache(clock):
    shared = LocMemCache("shared-rl", {})
    one = cache_limiter(clock, name="q", limit=3, window=60, cache=shared)
    two = cache_limiter(clock, name="q", limit=3, window=60, cache=shared)
    assert one.take("u") is None and two.take("u") is None and one.take("u") is None
    assert two.take("u") is not None


def test_counter_expiring_between_add_and_incr(clock, monkeypatch):
    limiter = cache_limiter(clock, name="t", limit=5, window=60)
    cache = caches["default"]
    real_add, real_incr = cache.add, cache.incr

    def present(*args, **kwargs):  # the key exists when the window is opened ...
        monkeypatch.setattr(cache, "add", real_add)
        return False

    def vanished(key, delta=1):  # ... and is gone when it is counted
        monkeypatch.setattr(cache, "incr", real_incr)
        raise ValueError("gone")

    monkeypatch.setattr(cache, "add", present)
    monkeypatch.setattr(cache, "incr", vanished)
    assert limiter.take("u") is None
    assert limiter.peek("u").remaining == 4


def test_local_limiter_sliding_window(clock):
    limiter = local_limiter(clock, limit=3, window=1.0)
    # take(): None when allowed (and counted), else the seconds to wait.
    assert [limiter.take() is None for _ in range(4)] == [True, True, True, False]
    refused = limiter.take()
    assert refused == pytest.approx(1.0)
    clock.advance(1.0)
    assert limiter.take() is None


def test_local_limiter_slides_hit_by_hit(clock):
    limiter = local_limiter(clock, limit=2, window=1.0)
    assert limiter.take() is None
    clock.advance(0.4)
    assert limiter.take() is None
    assert limiter.take() == pytest.approx(0.6)  # until the first hit leaves
    clock.advance(0.6)
    assert limiter.take() is None  # the first left; the second stays till 1.4
    assert limiter.take() == pytest.approx(0.4)


def test_local_keys_are_independent_and_peek_does_not_count(clock):
    limiter = local_limiter(clock, limit=2, window=10.0)
    assert limiter.take("a") is None and limiter.take("a") is None
    assert limiter.take("a") is not None
    assert limiter.peek("b").remaining == 2  # a key never taken: nothing made
    assert limiter.peek() == RateDecision(
        allowed=True, limit=2, remaining=2, retry_after=0.0
    )
    assert limiter.take("b") is None and limiter.peek("b").remaining == 1
    assert limiter.peek("b").remaining == 1
    assert limiter.take() is None and limiter.peek().remaining == 1
    clock.advance(4.0)
    assert limiter.peek("a") == RateDecision(
        allowed=False, limit=2, remaining=0, retry_after=6.0
    )
    clock.advance(6.0)
    assert limiter.peek("a").remaining == 2


@pytest.mark.parametrize("kind", ["cache", "local"])
def test_both_limiters_keep_one_contract(kind, clock):
    """Same calls, same meaning: only where the window lives differs."""
    if kind == "cache":
        limiter = cache_limiter(clock, name="same", limit=2, window=60)
    else:
        limiter = local_limiter(clock, limit=2, window=60)
    assert limiter.peek().remaining == 2
    assert limiter.take() is None and limiter.take() is None
    retry_after = limiter.take()
    assert isinstance(retry_after, float) and 0 < retry_after <= 60
    decision = limiter.peek()
    assert not decision.allowed and decision.limit == 2 and decision.remaining == 0
    assert limiter.take("other") is None  # a separate budget
    clock.advance(60)
    assert limiter.take() is None


def test_by_default_both_limiters_read_the_installed_clock(fake_clock):
    shared = CacheRateLimiter(name="d", limit=1, window=60)
    local = LocalRateLimiter(limit=1, window=60)
    assert shared.take() is None and local.take() is None
    assert shared.take() is not None and local.take() is not None
    fake_clock.advance(60)  # only the fake moved: real time did not
    assert shared.take() is None and local.take() is None


def peak_bytes(call, times: int = 5000) -> int:
    """The most memory held at once, over ``times`` calls, beyond the start."""
    # A tracer (coverage) allocates on every line it sees: not while measuring.
    tracer = sys.gettrace()
    sys.settrace(None)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(times):
            call()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
        sys.settrace(tracer)


def test_the_allowed_local_path_allocates_nothing():
    """It runs on every client frame; a profile once found an allocation there.

    An object it made and dropped (a decision, as ``peek`` returns) would raise the
    peak above that of reading the timer alone.
    """
    timer = iter([i * 0.001 for i in range(60_000)]).__next__  # C-level: no frame
    limiter = LocalRateLimiter(limit=10, window=0.005, timer=timer)
    for _ in range(500):  # the window slides from here on: 5 hits in it, all allowed
        assert limiter.take() is None
    # The least of three measures each: tracemalloc counts every thread, and a
    # thread left by another test may allocate meanwhile (seen once in CI); an
    # allocation of ``take`` itself would show in all three.
    taken = min(peak_bytes(limiter.take) for _ in range(3))
    assert taken <= min(peak_bytes(timer) for _ in range(3))
