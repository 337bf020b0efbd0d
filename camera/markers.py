"""ArUco marker detection, pose estimation, annotation and JPEG encoding of frames."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

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
    # _refine_corners fits lines to whole edges instead, 0.02-0.04 px, which keeps
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


# Edge-fit corner refinement ------------------------------------------------------
# Going outward across a marker edge, the only dark-to-bright step within about a
# bit is black border -> white quiet zone. The coarse pass finds that step within
# +-0.9 bit of the detector's edge (its corners can be 1-2 px off on small markers);
# the fine pass takes the 50 % crossing between the border's and the quiet zone's
# middles (+-0.5 bit), where neighbouring bits hardly reach through the blur. It
# assumes the printed quiet zone is at least one bit wide, as generators make it.
_REFINE_PASSES = ((True, 0.9), (False, 0.5))
_EDGE_SAMPLES = 16  # profiles per edge
_EDGE_MARGIN = 0.15  # fraction of the edge skipped at each end: the corners blur in
_PROFILE_STEP_PX = 0.25
_MIN_CONTRAST = 10.0  # grey levels between border and quiet zone to trust a profile
_NEXT = np.array([1, 2, 3, 0])
_PREVIOUS = np.array([3, 0, 1, 2])


def _edge_points(
    gray: np.ndarray, corners: np.ndarray, bits: int, reach: float, coarse: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel points on each of the 4 edges (4 x S x 2) and which are valid."""
    vectors = corners[_NEXT] - corners
    lengths = np.linalg.norm(vectors, axis=1)
    directions = vectors / lengths[:, None]
    # Corners run clockwise on screen, so (dy, -dx) points out of the marker.
    normals = np.stack([directions[:, 1], -directions[:, 0]], axis=1)
    # The bit size across an edge is set by the two neighbouring edges; under
    # perspective it differs from side to side.
    bit_across = (lengths[_PREVIOUS] + lengths[_NEXT]) / (2 * bits)
    half = reach * bit_across
    steps = max(2, math.ceil(half.max() / _PROFILE_STEP_PX))
    offsets = half[:, None] * (np.arange(-steps, steps + 1) / steps)[None, :]
    along = np.linspace(_EDGE_MARGIN, 1 - _EDGE_MARGIN, _EDGE_SAMPLES)
    bases = corners[:, None, :] + along[None, :, None] * vectors[:, None, :]
    points = (
        bases[:, :, None, :] + offsets[:, None, :, None] * normals[:, None, None, :]
    )
    maps = points.reshape(4 * _EDGE_SAMPLES, -1, 2).astype(np.float32)
    profiles = cv2.remap(
        gray, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    offsets = np.repeat(offsets, _EDGE_SAMPLES, axis=0)
    rows = np.arange(len(profiles))
    if coarse:
        rises = np.diff(profiles, axis=1)
        j = np.argmax(rises, axis=1)
        position = (offsets[rows, j] + offsets[rows, j + 1]) / 2
        valid = rises[rows, j] > _MIN_CONTRAST / 2
    else:
        dark, bright = profiles[:, 0], profiles[:, -1]
        threshold = (dark + bright) / 2
        j = np.argmax(profiles >= threshold[:, None], axis=1)
        valid = (bright - dark > _MIN_CONTRAST) & (j > 0)
        j = np.maximum(j, 1)
        low, high = profiles[rows, j - 1], profiles[rows, j]
        fraction = (threshold - low) / np.where(high > low, high - low, 1.0)
        position = offsets[rows, j - 1] + fraction * (
            offsets[rows, j] - offsets[rows, j - 1]
        )
    edges = bases.reshape(-1, 2) + position[:, None] * np.repeat(
        normals, _EDGE_SAMPLES, axis=0
    )
    return edges.reshape(4, _EDGE_SAMPLES, 2), valid.reshape(4, _EDGE_SAMPLES)


def _fit_lines(points: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """Lines (4 x 3, homogeneous) through each edge's points, or None if too few."""
    lines = np.empty((4, 3))
    for side in range(4):
        chosen = points[side][valid[side]]
        if len(chosen) < 4:
            return None
        # Huber rather than least squares: a scratch or a finger over part of an edge
        # should not tilt the whole line.
        dx, dy, x0, y0 = cv2.fitLine(
            chosen.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.001
        ).ravel()
        lines[side] = (-dy, dx, dy * x0 - dx * y0)
    return lines


def _refine_corners(
    gray: np.ndarray, corners: np.ndarray, bits: int, camera: CameraModel
) -> np.ndarray:
    """Corners as intersections of lines fitted to the 4 edges; detector's if unsure."""
    distorted = any(camera.dist)
    refined = corners
    for coarse, reach in _REFINE_PASSES:
        edges, valid = _edge_points(gray, refined, bits, reach, coarse)
        if distorted:
            # Edges are straight only once undistorted; fit there, map corners back.
            edges = cv2.undistortPoints(
                edges.reshape(-1, 1, 2),
                camera.matrix(),
                camera.dist_array(),
                P=camera.matrix(),
            ).reshape(4, _EDGE_SAMPLES, 2)
        lines = _fit_lines(edges, valid)
        if lines is None:
            return corners
        # Corner i joins edge i-1 and edge i; the cross product of two homogeneous
        # lines is their intersection.
        points = np.cross(lines[_PREVIOUS], lines)
        if (np.abs(points[:, 2]) < 1e-3).any():  # (nearly) parallel edges
            return corners
        candidate = points[:, :2] / points[:, 2:]
        if distorted:
            normalized = (candidate - [camera.cx, camera.cy]) / [camera.fx, camera.fy]
            rays = np.hstack([normalized, np.ones((4, 1))])
            candidate = cv2.projectPoints(
                rays, np.zeros(3), np.zeros(3), camera.matrix(), camera.dist_array()
            )[0].reshape(4, 2)
        refined = candidate
    # Moving a corner by more than half a bit (or 2 px) means an edge was mistaken
    # (occlusion, image border, a neighbour): the detector's corner is then safer.
    sides = np.linalg.norm(corners[_NEXT] - corners, axis=1)
    if np.abs(refined - corners).max() > max(2.0, 0.5 * sides.min() / bits):
        return corners
    return refined


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
            image_points = _refine_corners(gray_f, image_points, bits, camera)
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
