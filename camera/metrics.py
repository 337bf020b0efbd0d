"""The camera's Prometheus metrics: viewers' flow control, and the worker's own.

Flow-control figures are labelled by ``kind`` only (``raw``, ``annotated``), never by
stream, so that their number of series does not grow with the streams. The worker's
are labelled by ``stream``: one ``runcamera`` process serves one stream, on a port of
its own (``--metrics-port``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

STREAM_FRAMES_SENT = Counter(
    "realtime_stream_frames_sent",
    "Camera frames sent to viewers (each viewer counts), by kind.",
    ["kind"],
)
STREAM_FRAMES_DROPPED = Counter(
    "realtime_stream_frames_dropped",
    "Camera frames a viewer did not get, by kind and reason: replaced (a newer one "
    "took its place while the viewer was behind) or skipped (over its max_fps).",
    ["kind", "reason"],
)

# Detection and encoding take milliseconds per frame at 720p.
WORKER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25)
WORKER_FRAMES = Counter(
    "realtime_camera_frames", "Frames the worker captured and processed.", ["stream"]
)
WORKER_DROPPED = Counter(
    "realtime_camera_frames_dropped",
    "Frames the worker processed but could not publish.",
    ["stream"],
)
WORKER_FPS = Gauge(
    "realtime_camera_fps", "Frames per second over the last report window.", ["stream"]
)
WORKER_MARKERS = Gauge(
    "realtime_camera_markers", "Markers found in the latest frame.", ["stream"]
)
WORKER_DETECT_SECONDS = Histogram(
    "realtime_camera_detect_seconds",
    "Marker detection time per frame.",
    ["stream"],
    buckets=WORKER_BUCKETS,
)
WORKER_ENCODE_SECONDS = Histogram(
    "realtime_camera_encode_seconds",
    "Drawing and JPEG encoding time per frame, all kinds.",
    ["stream"],
    buckets=WORKER_BUCKETS,
)

_kinds: dict[str, tuple[Any, Any, Any]] = {}


def flow_meters(kind: str) -> tuple[Any, Any, Any]:
    """``(sent, replaced, skipped)`` children of ``kind``, bound once."""
    meters = _kinds.get(kind)
    if meters is None:
        meters = _kinds[kind] = (
            STREAM_FRAMES_SENT.labels(kind),
            STREAM_FRAMES_DROPPED.labels(kind, "replaced"),
            STREAM_FRAMES_DROPPED.labels(kind, "skipped"),
        )
    return meters


class WorkerMeters:
    """One worker's children (its stream's), bound when the run starts."""

    def __init__(self, stream: str) -> None:
        self.frames = WORKER_FRAMES.labels(stream)
        self.dropped = WORKER_DROPPED.labels(stream)
        self.fps = WORKER_FPS.labels(stream)
        self.markers = WORKER_MARKERS.labels(stream)
        self.detect = WORKER_DETECT_SECONDS.labels(stream)
        self.encode = WORKER_ENCODE_SECONDS.labels(stream)

    def frame(
        self, *, detect_ms: float, encode_ms: float, markers: int, published: bool
    ) -> None:
        self.frames.inc()
        if not published:
            self.dropped.inc()
        self.markers.set(markers)
        self.detect.observe(detect_ms / 1000)
        self.encode.observe(encode_ms / 1000)
