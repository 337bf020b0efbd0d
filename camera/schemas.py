"""Payload models of the camera sockets (docs/protocol.md §8, docs/camera.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from realtime.protocol import MAX_SAFE_INTEGER, StrictModel

Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Seq = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
Vector3 = Annotated[list[float], Field(min_length=3, max_length=3)]
Point = Annotated[list[float], Field(min_length=2, max_length=2)]

# A frame of a 4x4 dictionary holds at most a few dozen markers; the bounds only
# stop a client from making the server validate megabytes.
MAX_MARKERS = 256
MAX_TRANSFORMS = MAX_MARKERS * (MAX_MARKERS - 1) // 2


# ------------------------------------------------------------------ viewer → server
class Subscribe(StrictModel):
    """``stream.subscribe``: which kinds, whether poses, how many frames a second."""

    kinds: list[Kind] = Field(max_length=16)
    poses: bool = False
    max_fps: float | None = Field(default=None, gt=0, le=1000)


class Ack(StrictModel):
    """``frame.ack``: every frame up to ``seq`` (of ``kind``, or of every kind)."""

    seq: Seq
    kind: Kind | None = None


# ------------------------------------------------------------------ worker → server
class FrameHeader(StrictModel):
    """``frame`` on the ingest socket; the JPEG follows as one binary frame."""

    seq: Seq
    kind: Kind
    captured_at: float
    bytes: int = Field(gt=0)


class MarkerJson(StrictModel):
    id: int = Field(ge=0)
    corners: list[Point] = Field(min_length=4, max_length=4)
    rvec: Vector3
    tvec: Vector3
    distance_m: float = Field(ge=0)


class TransformJson(StrictModel):
    from_: int = Field(alias="from", ge=0)
    to: int = Field(ge=0)
    rvec: Vector3
    tvec: Vector3


class PosesPayload(StrictModel):
    """``poses`` on the ingest socket: relayed to viewers as it came."""

    seq: Seq
    captured_at: float
    markers: list[MarkerJson] = Field(max_length=MAX_MARKERS)
    transforms: list[TransformJson] = Field(max_length=MAX_TRANSFORMS)


# ------------------------------------------------------------------ server → client
# ``frame`` and ``poses`` go to viewers as the worker sent them (FrameHeader,
# PosesPayload); the rest are shapes for the AsyncAPI document, held to the code
# that builds them (Stream.info_payload, the consumers) by a test.
class CameraMatrix(StrictModel):
    fx: float
    fy: float
    cx: float
    cy: float
    dist: list[float] = Field(min_length=5, max_length=5)


class StreamInfo(StrictModel):
    """``stream.info``: the viewer's first frame (the worker's calibration or guess)."""

    stream_id: str
    title: str
    width: int
    height: int
    fps: float
    kinds: list[str]
    dictionary: str
    marker_length_m: float
    camera_matrix: CameraMatrix
    calibrated: bool


class StreamSubscribed(StrictModel):
    """``stream.subscribed``: what this viewer now receives."""

    kinds: list[str]
    poses: bool
    max_fps: float | None


class PublishReady(StrictModel):
    """``publish.ready``: the ingest socket's greeting and its limits."""

    stream_id: str
    kinds: list[str]
    max_frame_bytes: int
    max_text_bytes: int
