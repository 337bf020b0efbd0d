"""The camera endpoint's knobs, each with its one default (``realtime.conf``)."""

from __future__ import annotations

from realtime.conf import AppSettings, Knob

camera_settings = AppSettings(
    [
        Knob(
            "STREAM_MAX_IN_FLIGHT",
            2,
            "int",
            minimum=1,
            doc="frames a viewer may have unacknowledged",
        ),
        Knob(
            "STREAM_ACK_TIMEOUT",
            10.0,
            "float",
            minimum=0.1,
            doc="seconds a viewer may acknowledge nothing, then 4003",
        ),
        Knob(
            "CAMERA_LIVE_INTERVAL",
            0.2,
            "float",
            doc="seconds between writes of a stream's live state to the cache",
        ),
        Knob(
            "CAMERA_LIVE_TTL",
            600,
            "int",
            minimum=1,
            doc="seconds a stream's live state stays in the cache",
        ),
        Knob(
            "CAMERA_MAX_FRAME_BYTES",
            1_000_000,
            "int",
            minimum=1024,
            doc="bytes of one JPEG from a worker",
        ),
        Knob(
            "STREAM_THROTTLES",
            {"ping": (10, 1.0), "stream.subscribe": (10, 1.0)},
            "rates",
            doc="per-socket limits of the viewer endpoint's message types",
        ),
    ]
)
