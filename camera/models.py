"""A camera stream: what the worker captures and how, and who may publish to it.

Live status (fps, last frame, the latest images and poses) is not stored here: it
changes 30 times a second, so it lives in Django's cache (``camera.live``).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from camera.markers import DICTIONARIES, KINDS, CameraModel

# Stream ids end up in group names (realtime.groups) and URLs: ASCII, no dots.
SLUG_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
slug_validator = RegexValidator(
    SLUG_PATTERN, "Use 1-64 letters, digits, '-' or '_' for a stream id."
)


def _intrinsics(value: Any) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` from any of the forms ``camera_matrix`` accepts."""
    if isinstance(value, dict):
        return value["fx"], value["fy"], value["cx"], value["cy"]
    if isinstance(value, list) and len(value) == 4:
        fx, fy, cx, cy = value
        return fx, fy, cx, cy
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(row, list) and len(row) == 3 for row in value)
    ):
        return value[0][0], value[1][1], value[0][2], value[1][2]
    raise ValueError("expected {fx, fy, cx, cy}, [fx, fy, cx, cy] or a 3x3 matrix")


def new_publish_token() -> str:
    """A fresh publish token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def default_kinds() -> list[str]:
    return list(KINDS)


class Stream(models.Model):
    """One camera; ``slug`` is the ``<id>`` of every socket and REST path."""

    slug = models.CharField(max_length=64, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200, blank=True)
    source = models.CharField(
        max_length=500,
        blank=True,
        help_text="What runcamera opens when --source is not given: a device index, "
        "a file or folder, an rtsp/http URL, or 'synthetic'.",
    )
    width = models.PositiveIntegerField(default=640)
    height = models.PositiveIntegerField(default=480)
    fps = models.FloatField(default=30.0)
    camera_matrix = models.JSONField(
        null=True,
        blank=True,
        help_text='{"fx", "fy", "cx", "cy"} in pixels; empty: an uncalibrated guess.',
    )
    dist_coeffs = models.JSONField(
        default=list, blank=True, help_text="[k1, k2, p1, p2, k3]; empty: none."
    )
    dictionary = models.CharField(max_length=40, default="DICT_4X4_50")
    marker_length_m = models.FloatField(
        default=0.05, help_text="Side of the printed black square, in metres."
    )
    kinds = models.JSONField(default=default_kinds)
    public = models.BooleanField(
        default=False, help_text="Viewers need no credential (socket and REST)."
    )
    publish_token = models.CharField(max_length=64, default=new_publish_token)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.title or self.slug

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.dictionary not in DICTIONARIES:
            errors["dictionary"] = f"Unknown ArUco dictionary {self.dictionary!r}."
        if not (self.marker_length_m and self.marker_length_m > 0):
            errors["marker_length_m"] = "Must be a positive length in metres."
        if not (self.fps and self.fps > 0):
            errors["fps"] = "Must be positive."
        if self.width < 1 or self.height < 1:
            errors["width"] = "Width and height must be positive."
        kinds = self.kinds
        if (
            not isinstance(kinds, list)
            or not kinds
            or any(kind not in KINDS for kind in kinds)
            or len(set(kinds)) != len(kinds)
        ):
            errors["kinds"] = f"A list of distinct kinds among {', '.join(KINDS)}."
        try:
            self.camera_model()
        except (TypeError, ValueError, KeyError) as exc:
            errors["camera_matrix"] = f"Invalid camera parameters: {exc}"
        if errors:
            raise ValidationError(errors)

    def camera_model(self) -> CameraModel:
        """Intrinsics and distortion, or the default guess for width x height.

        ``camera_matrix`` may be ``{"fx","fy","cx","cy"}``, ``[fx, fy, cx, cy]`` or
        the 3x3 matrix K; ``dist_coeffs`` 4 or 5 of OpenCV's (k1, k2, p1, p2, k3).
        """
        dist = [float(v) for v in self.dist_coeffs or ()] or [0.0] * 5
        if len(dist) == 4:
            dist.append(0.0)  # k3 left out, as OpenCV allows
        if not self.camera_matrix:
            guess = CameraModel.default(self.width, self.height)
            return CameraModel(guess.fx, guess.fy, guess.cx, guess.cy, dist)
        return CameraModel(*_intrinsics(self.camera_matrix), dist)

    def info_payload(self) -> dict[str, Any]:
        """``stream.info`` (docs/protocol.md §8)."""
        payload: dict[str, Any] = {
            "stream_id": self.slug,
            "title": self.title,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "kinds": list(self.kinds),
            "dictionary": self.dictionary,
            "marker_length_m": self.marker_length_m,
            # What the worker computes poses with: the calibration, or its guess.
            "camera_matrix": self.camera_model().to_json(),
            "calibrated": bool(self.camera_matrix),
        }
        return payload
