"""ArUco marker detection, pose estimation and marker-to-marker transforms."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from camera.refine import refine_corners

# Every name OpenCV exposes, both spellings of the AprilTag ones (16h5 and 16H5).
DICTIONARIES: dict[str, int] = {
    name: getattr(cv2.aruco, name)
    for name in dir(cv2.aruco)
    if name.startswith("DICT_")
}
KINDS: tuple[str, ...] = ("raw", "annotated")

# Corners are good to ~0.03 px at best; metres and radians to 6 decimals are
# micrometres and microradians. All far below what the detector resolves, so the
# rounding loses nothing and keeps payloads small.
_PIXEL_DECIMALS = 2
_METRIC_DECIMALS = 6


@dataclass(frozen=True, slots=True)
class CameraModel:
    """Pinhole intrinsics plus OpenCV's (k1, k2, p1, p2, k3) distortion."""

    fx: float
    fy: float
    cx: float
    cy: float
    dist: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if len(self.dist) != 5:
            raise ValueError("dist needs 5 coefficients: k1,k2,p1,p2,k3")
        # Plain floats and a tuple, whatever came in (numpy scalars, a list), so the
        # model stays hashable and its JSON plain.
        for name in ("fx", "fy", "cx", "cy"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "dist", tuple(float(v) for v in self.dist))
        values = (self.fx, self.fy, self.cx, self.cy, *self.dist)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("camera parameters must be finite numbers")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError("fx and fy must be positive focal lengths in pixels")

    @classmethod
    def default(cls, width: int, height: int) -> CameraModel:
        """An uncalibrated guess for a width x height webcam, without distortion.

        fx = fy = 0.9 * width is a horizontal field of view of about 58 degrees,
        the middle of what USB and laptop webcams ship with (50-70 degrees); square
        pixels and a centred principal point are what calibration usually finds.
        Distances from an uncalibrated camera are only as good as this guess.
        """
        if width <= 0 or height <= 0:
            raise ValueError("width and height must be positive")
        focal = 0.9 * width
        return cls(fx=focal, fy=focal, cx=width / 2.0, cy=height / 2.0)

    @classmethod
    def parse(cls, camera_matrix: str, dist_coeffs: str | None = None) -> CameraModel:
        """Build from the worker's `fx,fy,cx,cy` and `k1,k2,p1,p2,k3` flag strings."""
        intrinsics = _parse_floats(camera_matrix, 4, "camera matrix (fx,fy,cx,cy)")
        k1, k2, p1, p2, k3 = (
            _parse_floats(dist_coeffs, 5, "distortion (k1,k2,p1,p2,k3)")
            if dist_coeffs
            else [0.0] * 5
        )
        fx, fy, cx, cy = intrinsics
        return cls(fx=fx, fy=fy, cx=cx, cy=cy, dist=(k1, k2, p1, p2, k3))

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K as float64."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
            dtype=np.float64,
        )

    def dist_array(self) -> np.ndarray:
        """Distortion coefficients as a float64 array of 5."""
        return np.array(self.dist, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form, e.g. for `stream.info`'s `camera_matrix`."""
        return {
            "fx": float(self.fx),
            "fy": float(self.fy),
            "cx": float(self.cx),
            "cy": float(self.cy),
            "dist": [float(v) for v in self.dist],
        }


def _parse_floats(text: str, count: int, what: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"{what}: expected {count} comma-separated numbers") from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what}: expected {count} comma-separated finite numbers")
    return values


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """What to look for: ArUco dictionary, printed marker size and the camera."""

    camera: CameraModel
    dictionary: str = "DICT_4X4_50"
    # Side of the black square (not the white quiet zone), as OpenCV defines it.
    marker_length_m: float = 0.05
    refine_corners: bool = True

    def __post_init__(self) -> None:
        if self.dictionary not in DICTIONARIES:
            accepted = ", ".join(sorted(DICTIONARIES))
            raise ValueError(
                f"unknown ArUco dictionary {self.dictionary!r}; accepted: {accepted}"
            )
        if not (math.isfinite(self.marker_length_m) and self.marker_length_m > 0):
            raise ValueError("marker_length_m must be a positive length in metres")

    def object_points(self) -> np.ndarray:
        """Marker corners in the marker frame, in the order IPPE_SQUARE requires."""
        half = self.marker_length_m / 2.0
        return np.array(
            [
                [-half, half, 0.0],
                [half, half, 0.0],
                [half, -half, 0.0],
                [-half, -half, 0.0],
            ],
            dtype=np.float64,
        )


# eq=False: comparing arrays field by field has no single truth value.
@dataclass(frozen=True, slots=True, eq=False)
class MarkerPose:
    """One marker seen in a frame: pixel corners and its pose in the camera frame."""

    id: int
    corners: np.ndarray  # 4x2 pixels: top-left, top-right, bottom-right, bottom-left
    rvec: np.ndarray  # 3, Rodrigues, camera <- marker
    tvec: np.ndarray  # 3, metres
    distance_m: float

    def to_json(self) -> dict[str, Any]:
        """The `markers[]` entry of the `poses` payload (PROTOCOL 8)."""
        return {
            "id": int(self.id),
            "corners": [
                [round(float(x), _PIXEL_DECIMALS), round(float(y), _PIXEL_DECIMALS)]
                for x, y in self.corners
            ],
            "rvec": _rounded(self.rvec),
            "tvec": _rounded(self.tvec),
            "distance_m": round(float(self.distance_m), _METRIC_DECIMALS),
        }


def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(v), _METRIC_DECIMALS) for v in values]


@functools.lru_cache(maxsize=16)
def _detector(dictionary: str) -> tuple[cv2.aruco.ArucoDetector, int]:
    """The detector for a dictionary and its marker width in bits, border included."""
    # Building a detector allocates the dictionary's bit tables; at 30 fps that is
    # waste, so one detector per dictionary lives for the process.
    params = cv2.aruco.DetectorParameters()
    # OpenCV's own refinements, measured on rendered markers with webcam-like blur,
    # noise and JPEG: SUBPIX left a mean corner error of 0.33 px (cornerSubPix is
    # biased inward on blurred L-shaped corners, and its window is tiny on small
    # markers): 4-5 % distance errors and some flipped poses. CONTOUR: 0.7 px.
    # camera.refine fits lines to whole edges instead, 0.02-0.04 px, which keeps
    # rotations within a degree for a 30 px marker. So the detector only finds.
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_NONE
    aruco_dict = cv2.aruco.getPredefinedDictionary(DICTIONARIES[dictionary])
    bits = aruco_dict.markerSize + 2 * params.markerBorderBits
    return cv2.aruco.ArucoDetector(aruco_dict, params), bits


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def detect_markers(
    image: np.ndarray, *, detector_config: DetectorConfig
) -> list[MarkerPose]:
    """Find markers in a BGR or grey image and estimate each one's pose.

    Sorted by id; when an id is seen twice the larger (more accurate) one comes first.
    """
    gray = _to_gray(image)
    detector, bits = _detector(detector_config.dictionary)
    corners, ids, _rejected = detector.detectMarkers(gray)
    if ids is None or len(ids) == 0:
        return []
    camera = detector_config.camera
    gray_f = gray.astype(np.float32) if detector_config.refine_corners else gray
    object_points = detector_config.object_points()
    camera_matrix = camera.matrix()
    dist = camera.dist_array()
    markers: list[MarkerPose] = []
    for marker_corners, marker_id in zip(corners, ids.ravel(), strict=True):
        image_points = marker_corners.reshape(4, 2).astype(np.float64)
        if detector_config.refine_corners:
            image_points = refine_corners(
                gray_f, image_points, bits, camera_matrix=camera_matrix, dist=dist
            )
        ok, rvec, tvec = cv2.solvePnP(
            object_points,
            image_points,
            camera_matrix,
            dist,
            flags=cv2.SOLVEPNP_IPPE_SQUARE,
        )
        rvec = rvec.reshape(3)
        tvec = tvec.reshape(3)
        # A degenerate quad can give NaN, which JSON (and the protocol) cannot carry.
        if not ok or not (np.isfinite(rvec).all() and np.isfinite(tvec).all()):
            continue
        markers.append(
            MarkerPose(
                id=int(marker_id),
                corners=image_points,
                rvec=rvec,
                tvec=tvec,
                distance_m=float(np.linalg.norm(tvec)),
            )
        )
    markers.sort(
        key=lambda m: (m.id, -cv2.arcLength(m.corners.astype(np.float32), True))
    )
    return markers


def _homogeneous(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64))[0]
    transform[:3, 3] = np.asarray(tvec, dtype=np.float64).reshape(3)
    return transform


def relative_pose(a: MarkerPose, b: MarkerPose) -> tuple[np.ndarray, np.ndarray]:
    """Pose of marker b in marker a's frame: T_ab = inv(T_ca) @ T_cb."""
    t_ca = _homogeneous(a.rvec, a.tvec)
    t_cb = _homogeneous(b.rvec, b.tvec)
    rotation = t_ca[:3, :3].T @ t_cb[:3, :3]
    translation = t_ca[:3, :3].T @ (t_cb[:3, 3] - t_ca[:3, 3])
    rvec = cv2.Rodrigues(rotation)[0].reshape(3)
    return rvec, translation


def pairwise_transforms(markers: Sequence[MarkerPose]) -> list[dict[str, Any]]:
    """`transforms` of the poses payload: every pair a < b, b in a's frame.

    An id seen twice uses its first entry (detect_markers puts the largest first).
    """
    by_id: dict[int, MarkerPose] = {}
    for marker in markers:
        by_id.setdefault(marker.id, marker)
    ids = sorted(by_id)
    transforms: list[dict[str, Any]] = []
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            rvec, tvec = relative_pose(by_id[a], by_id[b])
            transforms.append(
                {"from": a, "to": b, "rvec": _rounded(rvec), "tvec": _rounded(tvec)}
            )
    return transforms
