"""This process's recent closes and errors: a bounded ring the live view shows."""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any

from realtime import clock

# Enough to see what just happened (a burst of 4013s, a run of heartbeat timeouts)
# while a report stays a few KiB in the shared cache.
RING_SIZE = 50

_ring: deque[dict[str, Any]] = deque(maxlen=RING_SIZE)


def record(*, kind: str, code: int | str, endpoint: str, conn_id: str, reason: str):
    """Remember one event; the same ``kind``/``code`` for the same connection once."""
    code = code if isinstance(code, str) else int(code)
    # A close reported by two layers is one close. Runs on every error frame sent:
    # a look at the last few entries, no copy of the ring.
    for known in islice(reversed(_ring), 8):
        if (known["conn"], known["kind"], known["code"]) == (conn_id, kind, code):
            return
    _ring.append(
        {
            "at": round(clock.now(), 3),
            "kind": kind,
            "code": code,
            "endpoint": endpoint,
            "conn": conn_id,
            "reason": reason,
        }
    )


def _of(consumer: Any, kind: str, code: int | str, reason: str) -> None:
    endpoint = getattr(consumer, "endpoint", "unknown")
    conn_id = getattr(consumer, "conn_id", "")
    record(kind=kind, code=code, endpoint=endpoint, conn_id=conn_id, reason=reason)


def record_close(consumer: Any, code: int, reason: str) -> None:
    """A close this process decided on, for ``consumer``."""
    _of(consumer, "close", code, reason)


def record_error(consumer: Any, code: str, reason: str) -> None:
    """An error frame (or a handler's failure) sent to ``consumer``'s client."""
    _of(consumer, "error", code, reason)


def recent_events() -> list[dict[str, Any]]:
    """The ring, oldest first."""
    return list(_ring)


def clear() -> None:
    """Forget everything (tests)."""
    _ring.clear()
