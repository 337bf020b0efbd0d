"""A stream's live state in Django's cache: latest image per kind, poses, frame rate.

Whoever hands a stream's frames to its group records them here: the ingest socket
(in the server process) or the worker itself when it publishes over Redis. The cache
is the server's local memory in the first case and the shared Redis in the second,
so the REST endpoints and the admin find the same state on every server process. A
write per frame would cost a Redis round trip per frame for nothing: the recorder
keeps references in memory and writes at most every ``CAMERA_LIVE_INTERVAL`` seconds
(and when the publisher goes away). Entries expire after ``CAMERA_LIVE_TTL``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

from camera.conf import camera_settings
from realtime.groups import stream_group
from realtime.presence import room_members
from realtime.writebehind import WriteBehind

# Frames after the last one within which a stream still counts as live: a few frame
# periods at any rate a camera runs (1 fps and up) without flickering on jitter.
LIVE_WINDOW_S = 5.0
_FPS_WINDOW = 31  # arrivals: the rate over the last 30 frame intervals


def _status_key(slug: str) -> str:
    return f"camera:status:{slug}"


def _image_key(slug: str, kind: str) -> str:
    return f"camera:image:{slug}:{kind}"


def _poses_key(slug: str) -> str:
    return f"camera:poses:{slug}"


class LiveRecorder:
    """Latest frames and poses of one stream, and its measured frame rate."""

    def __init__(
        self,
        slug: str,
        *,
        interval: float | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.slug = slug
        self.interval = float(
            camera_settings.CAMERA_LIVE_INTERVAL if interval is None else interval
        )
        self.ttl = float(camera_settings.CAMERA_LIVE_TTL if ttl is None else ttl)
        self.clock = clock
        self.seq: int | None = None
        self.captured_at: float | None = None
        self.frames = 0
        self.arrivals: deque[float] = deque(maxlen=_FPS_WINDOW)
        self.changed: dict[str, Any] = {}
        self.kinds: set[str] = set()
        self.written_at: float | None = None
        # On Redis the frames are written off the event loop, in order.
        self.writes = WriteBehind(cache)

    def frame(self, *, seq: int, kind: str, captured_at: float, jpeg: bytes) -> None:
        self._seen(seq, captured_at)
        self.kinds.add(kind)
        self.changed[_image_key(self.slug, kind)] = (seq, captured_at, jpeg)
        self._maybe_flush()

    def poses(self, payload: dict[str, Any]) -> None:
        self._seen(payload["seq"], payload["captured_at"])
        self.changed[_poses_key(self.slug)] = payload
        self._maybe_flush()

    def fps(self) -> float:
        if len(self.arrivals) < 2:
            return 0.0
        span = self.arrivals[-1] - self.arrivals[0]
        return (len(self.arrivals) - 1) / span if span > 0 else 0.0

    def flush(self) -> None:
        """Write what changed, and the status, to the cache now."""
        if self.seq is None:
            return
        now = self.clock()
        self.changed[_status_key(self.slug)] = {
            "seq": self.seq,
            "captured_at": self.captured_at,
            "last_frame_at": self.arrivals[-1],
            "fps": round(self.fps(), 2),
            "frames": self.frames,
            "kinds": sorted(self.kinds),
        }
        self.writes.write(cache.set_many, self.changed, timeout=self.ttl)
        self.changed = {}
        self.written_at = now

    def _seen(self, seq: int, captured_at: float) -> None:
        if seq != self.seq:
            self.seq = seq
            self.captured_at = captured_at
            self.frames += 1
            self.arrivals.append(self.clock())

    def _maybe_flush(self) -> None:
        if self.written_at is None or self.clock() - self.written_at >= self.interval:
            self.flush()


# ---------------------------------------------------------------------- selectors
def stream_latest_image(*, slug: str, kind: str) -> tuple[int, float, bytes] | None:
    """``(seq, captured_at, jpeg)`` of the newest recorded frame of ``kind``."""
    return cache.get(_image_key(slug, kind))


def stream_latest_poses(*, slug: str) -> dict[str, Any] | None:
    """The newest recorded ``poses`` payload (seq, captured_at, markers, transforms)."""
    return cache.get(_poses_key(slug))


def stream_viewer_count(*, slug: str) -> int:
    """Viewers connected to any server process (presence)."""
    return len(room_members(stream_group(slug)))


def stream_live_status(
    *, slug: str, now: float | None = None, viewers: bool = True
) -> dict[str, Any]:
    """``{"live", "fps", "last_frame_at", "seq", "frames", "kinds", "viewers"}``.

    ``last_frame_at`` is epoch seconds (``None`` before the first frame); ``fps`` is
    the measured rate while live, 0 otherwise.
    """
    now = time.time() if now is None else now
    status = cache.get(_status_key(slug)) or {}
    last = status.get("last_frame_at")
    live = last is not None and now - last < LIVE_WINDOW_S
    result = {
        "live": live,
        "fps": status.get("fps", 0.0) if live else 0.0,
        "last_frame_at": last,
        "seq": status.get("seq"),
        "frames": status.get("frames", 0),
        "kinds": status.get("kinds", []),
    }
    if viewers:
        result["viewers"] = stream_viewer_count(slug=slug)
    return result
