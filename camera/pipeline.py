"""One frame through the worker: detect once, then draw and encode each kind once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from camera.markers import (
    KINDS,
    CameraModel,
    DetectorConfig,
    MarkerPose,
    detect_markers,
    pairwise_transforms,
)


def annotate(
    image: np.ndarray,
    markers: Sequence[MarkerPose],
    camera: CameraModel,
    marker_length: float,
) -> np.ndarray:
    """A BGR copy of image with outlines, ids, axes and distances drawn on it."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    if not markers:
        return out
    corners = [m.corners.reshape(1, 4, 2).astype(np.float32) for m in markers]
    ids = np.array([[m.id] for m in markers], dtype=np.int32)
    cv2.aruco.drawDetectedMarkers(out, corners, ids)
    camera_matrix = camera.matrix()
    dist = camera.dist_array()
    # Scale strokes and text with the frame: visible at 1080p, tidy at 320x240.
    scale = max(out.shape[:2]) / 1280
    thickness = max(1, round(4 * scale))
    text_thickness = max(1, round(2 * scale))
    for marker in markers:
        cv2.drawFrameAxes(
            out,
            camera_matrix,
            dist,
            marker.rvec,
            marker.tvec,
            marker_length * 0.75,
            thickness,
        )
        x, y = marker.corners[2]
        cv2.putText(
            out,
            f"{marker.distance_m:.2f} m",
            (int(x) + 4, int(y) + round(28 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 0, 255),
            text_thickness,
            cv2.LINE_AA,
        )
    return out


def encode_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of a BGR or grey image; quality is 1..100."""
    if not 1 <= quality <= 100:
        raise ValueError("JPEG quality must be between 1 and 100")
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode this image as JPEG")
    return buffer.tobytes()


@dataclass(slots=True)
class FrameResult:
    """Everything one processed frame yields: JPEGs per kind, poses and timings."""

    jpeg: dict[str, bytes]
    markers: list[MarkerPose]
    transforms: list[dict[str, Any]]
    detect_ms: float
    # Includes drawing the annotated overlay, the only other per-kind cost.
    encode_ms: float
    width: int
    height: int

    def poses_payload(self, seq: int, captured_at: float | str) -> dict[str, Any]:
        """The `poses` payload of PROTOCOL 8; captured_at is passed through as given."""
        return {
            "seq": seq,
            "captured_at": captured_at,
            "markers": [m.to_json() for m in self.markers],
            "transforms": self.transforms,
        }


def process_frame(
    image: np.ndarray,
    *,
    config: DetectorConfig,
    kinds: Sequence[str] = KINDS,
    quality: int = 80,
) -> FrameResult:
    """Detect markers once, then draw and encode each requested kind exactly once."""
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown frame kinds {unknown}; accepted: {', '.join(KINDS)}")
    started = time.perf_counter()
    markers = detect_markers(image, detector_config=config)
    transforms = pairwise_transforms(markers)
    detected = time.perf_counter()
    jpeg: dict[str, bytes] = {}
    for kind in dict.fromkeys(kinds):
        if kind == "raw":
            jpeg[kind] = encode_jpeg(image, quality)
        else:
            drawn = annotate(image, markers, config.camera, config.marker_length_m)
            jpeg[kind] = encode_jpeg(drawn, quality)
    encoded = time.perf_counter()
    height, width = image.shape[:2]
    return FrameResult(
        jpeg=jpeg,
        markers=markers,
        transforms=transforms,
        detect_ms=(detected - started) * 1000.0,
        encode_ms=(encoded - detected) * 1000.0,
        width=width,
        height=height,
    )
