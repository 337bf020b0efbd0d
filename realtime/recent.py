"""This process's recent closes and errors: a bounded ring the live view shows."""

from __future__ import annotations

from collections import deque
from typing import Any

from realtime import clock

# Enough to see what just happened (a burst of 4013s, a run of heartbeat timeouts)
# while a report stays a few KiB in the shared cache.
RING_SIZE = 50

_ring: deque[dict[str, Any]] = deque(maxlen=RING_SIZE)


def record(*, kind: str, code: int | str, endpoint: str, conn_id: str, reason: str):
    """Remember one event; the same ``kind``/``code`` for the same connection once."""
    entry = {
        "at": round(clock.now(), 3),
        "kind": kind,
        "code": code if isinstance(code, str) else int(code),
        "endpoint": endpoint,
        "conn": conn_id,
        "reason": reason,
    }
    for known in list(_ring)[-8:]:  # a close reported by two layers is one close
        if (known["conn"], known["kind"], known["code"]) == (
            conn_id,
            kind,
            entry["code"],
        ):
            return
    _ring.append(entry)


def record_close(consumer: Any, code: int, reason: str) -> None:
    """A close this process decided on, for ``consumer``."""
    record(
        kind="close",
        code=code,
        endpoint=getattr(consumer, "endpoint", "unknown"),
        conn_id=getattr(consumer, "conn_id", ""),
        reason=reason,
    )


def record_error(consumer: Any, code: str, reason: str) -> None:
    """An error frame (or a handler's failure) sent to ``consumer``'s client."""
    record(
        kind="error",
        code=code,
        endpoint=getattr(consumer, "endpoint", "unknown"),
        conn_id=getattr(consumer, "conn_id", ""),
        reason=reason,
    )


def recent_events() -> list[dict[str, Any]]:
    """The ring, oldest first."""
    return list(_ring)


def clear() -> None:
    """Forget everything (tests)."""
    _ring.clear()
