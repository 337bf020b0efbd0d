"""The toolkit's one clock: time is read through here so that tests can fake it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> float: ...


# The installed readings, as plain callables: ``monotonic()`` runs on every client
# frame (the per-connection throttles), so it costs one global lookup and a call.
_monotonic = time.monotonic
_now = time.time


def monotonic() -> float:
    """Seconds on a clock that never goes back (intervals, throttles, deadlines)."""
    return _monotonic()


def now() -> float:
    """Wall-clock seconds since the epoch (shared windows, expiries others read)."""
    return _now()


@contextmanager
def installed(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the source of ``monotonic()`` and ``now()`` inside the block."""
    global _monotonic, _now
    saved = _monotonic, _now
    _monotonic, _now = clock.monotonic, clock.now
    try:
        yield clock
    finally:
        _monotonic, _now = saved


class ManualClock:
    """A clock that moves only when told to; both readings advance together.

    The defaults are arbitrary but realistic: a wall time in 2023 and a monotonic
    reading far from zero, so code subtracting a window from either stays positive.
    """

    def __init__(
        self, *, now: float = 1_700_000_000.0, monotonic: float = 10_000.0
    ) -> None:
        self._now = float(now)
        self._monotonic = float(monotonic)

    def monotonic(self) -> float:
        return self._monotonic

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move both readings on by ``seconds`` (a monotonic clock never goes back)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._now += seconds
        self._monotonic += seconds
