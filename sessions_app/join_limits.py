"""How fast guests may join a session: slow for guessing codes, generous for a venue.

An audience of hundreds on a venue's Wi-Fi shares one public address, so a limit on
joins per address would turn the 21st guest away. What guessing produces is misses:
unknown or closed codes. So each address has a budget of misses
(``SESSION_JOIN_MISS_LIMIT`` per ``SESSION_JOIN_MISS_WINDOW`` seconds); past it, every
join from that address is refused until the window ends, known codes included (an
answer that told a known code from an unknown one would keep the guessing going).
Joins of a known code are bounded per session instead (``SESSION_JOIN_LIMIT`` per
``SESSION_JOIN_WINDOW``), however many addresses they come from. Counts live in the
shared cache, so every server process draws from the same budgets.
"""

from __future__ import annotations

from realtime.errors import Throttled
from realtime.ratelimit import CacheRateLimiter
from sessions_app.conf import sessions_settings


def _misses() -> CacheRateLimiter:
    return CacheRateLimiter(
        name="join-miss",
        limit=sessions_settings.SESSION_JOIN_MISS_LIMIT,
        window=sessions_settings.SESSION_JOIN_MISS_WINDOW,
    )


def join_address_check(*, address: str) -> None:
    """``Throttled`` if ``address`` has used up its misses for now."""
    budget = _misses().peek(address)
    if not budget.allowed:
        raise Throttled(
            "too many unknown or closed codes from your address",
            retry_after=budget.retry_after,
        )


def join_miss(*, address: str) -> None:
    """Count an unknown or closed code tried from ``address``."""
    _misses().take(address)


def join_session_count(*, code: str) -> None:
    """Count one join into session ``code``; ``Throttled`` past its budget."""
    joins = CacheRateLimiter(
        name="join",
        limit=sessions_settings.SESSION_JOIN_LIMIT,
        window=sessions_settings.SESSION_JOIN_WINDOW,
    )
    retry_after = joins.take(code)
    if retry_after is not None:
        raise Throttled(
            "this session is taking many joins: try again", retry_after=retry_after
        )
