"""The group events that carry a stream's frames to its viewers, and JPEG checks.

A publisher (the ingest socket, or a worker on the shared Redis) builds each event
once per frame and kind, wire text included; every viewer gets the same dict (from
the hub, never copied) and only decides whether to send it. Receivers must not
mutate an event. Both publishing paths use these two types:

``{"type": "stream.frame", "seq", "kind", "captured_at", "header": <frame envelope
text>, "jpeg": <bytes>}`` and ``{"type": "stream.poses", "seq", "text": <poses
envelope text>}``.
"""

from __future__ import annotations

import json
from typing import Any

from realtime.protocol import encode_frame

FRAME_EVENT = "stream.frame"
POSES_EVENT = "stream.poses"

JPEG_START = b"\xff\xd8"  # SOI
JPEG_END = b"\xff\xd9"  # EOI

_client_encoder = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def frame_payload(
    *, seq: int, kind: str, captured_at: float, size: int
) -> dict[str, Any]:
    """The ``frame`` header (docs/protocol.md §8), both to viewers and from workers."""
    return {"seq": seq, "kind": kind, "captured_at": captured_at, "bytes": size}


def frame_event(
    *, seq: int, kind: str, captured_at: float, jpeg: bytes
) -> dict[str, Any]:
    """One kind of one frame, ready for every viewer: header text plus the JPEG."""
    payload = frame_payload(seq=seq, kind=kind, captured_at=captured_at, size=len(jpeg))
    return {
        "type": FRAME_EVENT,
        "seq": seq,
        "kind": kind,
        "captured_at": captured_at,
        "header": encode_frame("frame", payload),
        "jpeg": jpeg,
    }


def poses_event(payload: dict[str, Any]) -> dict[str, Any]:
    """The ``poses`` of one frame (``seq``, ``captured_at``, markers, transforms)."""
    return {
        "type": POSES_EVENT,
        "seq": payload["seq"],
        "text": encode_frame("poses", payload),
    }


def client_frame(type_: str, payload: dict[str, Any]) -> str:
    """A client → server envelope (the worker's side of the ingest socket)."""
    return _client_encoder.encode({"type": type_, "payload": payload})


def jpeg_problem(data: bytes, expected_size: int) -> str | None:
    """Why ``data`` is not the complete JPEG its header announced, or ``None``."""
    if not data:
        return "the JPEG is empty"
    if len(data) != expected_size:
        return f"the JPEG has {len(data)} bytes, its header announced {expected_size}"
    if not data.startswith(JPEG_START):
        return "not a JPEG: it does not start with the start-of-image marker FF D8"
    if not data.endswith(JPEG_END):
        return "truncated JPEG: it does not end with the end-of-image marker FF D9"
    return None
