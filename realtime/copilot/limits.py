"""The copilot's query budget: ``COPILOT_RATE_LIMIT`` per ``COPILOT_RATE_WINDOW``.

Counted in Django's cache (shared by every process on Redis) per user when
``SHARE_RATE_LIMIT`` is on, per connection otherwise. The knobs
(``realtime.copilot.conf``) are read on every call so tests can change them; time
comes from ``realtime.clock``, which tests replace with the ``fake_clock`` fixture.
"""

from __future__ import annotations

from realtime.copilot.conf import copilot_settings
from realtime.ratelimit import CacheRateLimiter


def query_limiter() -> CacheRateLimiter:
    """The limiter on the current settings: ``ahit(key)`` once per query (on the
    event loop: Redis through the asyncio client)."""
    return CacheRateLimiter(
        name="copilot",
        limit=copilot_settings.COPILOT_RATE_LIMIT,
        window=copilot_settings.COPILOT_RATE_WINDOW,
    )


def rate_key(*, user_id: object, conn_id: str) -> str:
    """Whose budget a query draws from."""
    if copilot_settings.SHARE_RATE_LIMIT:
        return f"user:{user_id}"
    return f"conn:{conn_id}"


def max_in_flight() -> int:
    """Queries one connection may have running at once (each is a task)."""
    return copilot_settings.COPILOT_MAX_IN_FLIGHT
