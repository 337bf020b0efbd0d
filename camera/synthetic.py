"""A generated scene of ArUco markers on known 3D paths, with exact ground truth."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from camera.markers import DICTIONARIES, CameraModel, DetectorConfig, MarkerPose

# Image-space anchors (fractions of width, height) that keep 2-4 markers apart even
# at their nearest and most rotated.
_ANCHORS: dict[int, tuple[tuple[float, float], ...]] = {
    2: ((0.3, 0.5), (0.7, 0.5)),
    3: ((0.25, 0.32), (0.75, 0.32), (0.5, 0.72)),
    4: ((0.27, 0.29), (0.73, 0.29), (0.27, 0.71), (0.73, 0.71)),
}
# Ids present in every predefined dictionary (the smallest, APRILTAG_16h5, has 30).
DEFAULT_MARKER_IDS = (3, 7, 12, 25)
# Lens blur in pixels; about what a webcam's optics and demosaicing give.
_BLUR_SIGMA = 0.8
# Marker pixels per bit available for rendering; the largest that is not larger
# than the projected marker is used, so warping only ever magnifies (no aliasing).
_PIXELS_PER_BIT = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 1:
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _facing(position: np.ndarray) -> np.ndarray:
    """Rotation of an upright marker at position whose face looks at the camera."""
    # Marker z points back along the ray to the camera, marker y points up (camera
    # y points down), marker x completes the right-handed frame.
    z_axis = -position / np.linalg.norm(position)
    x_axis = np.cross(np.array([0.0, -1.0, 0.0]), z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    return np.column_stack([x_axis, y_axis, z_axis])


@functools.lru_cache(maxsize=128)
def _marker_sprite(dictionary: str, marker_id: int, pixels_per_bit: int) -> np.ndarray:
    aruco_dict = cv2.aruco.getPredefinedDictionary(DICTIONARIES[dictionary])
    bits = aruco_dict.markerSize + 2
    marker = cv2.aruco.generateImageMarker(
        aruco_dict, marker_id, bits * pixels_per_bit, borderBits=1
    )
    # One bit of white quiet zone: the detector needs contrast around the black border.
    sprite = cv2.copyMakeBorder(
        marker, *(pixels_per_bit,) * 4, cv2.BORDER_CONSTANT, value=255
    )
    sprite = cv2.cvtColor(sprite, cv2.COLOR_GRAY2BGR)
    sprite.flags.writeable = False
    return sprite


@functools.lru_cache(maxsize=8)
def _background(width: int, height: int) -> np.ndarray:
    # Smooth grey-brown blotches plus fine grain, blurred like the markers: texture
    # that tempts the detector with false candidates, never a black-bordered square.
    rng = np.random.default_rng(20_251_122)
    shade = rng.uniform(70, 190, size=(9, 12, 1)).astype(np.float32)
    tint = rng.normal(0, 12, size=(9, 12, 3)).astype(np.float32)
    image = cv2.resize(shade + tint, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 5, size=image.shape).astype(np.float32)
    image = cv2.GaussianBlur(image + grain, (5, 5), _BLUR_SIGMA)
    image = np.clip(image, 40, 215).astype(np.uint8)
    image.flags.writeable = False
    return image


class SyntheticScene:
    """A deterministic scene of 2-4 ArUco markers moving along smooth 3D paths.

    Frame k always renders the same image. Poses are exact for a camera without
    distortion; with distortion the marker is warped by a homography, so only the
    corners are placed exactly.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        *,
        config: DetectorConfig | None = None,
        n_markers: int = 3,
        fps: float = 30.0,
        marker_ids: tuple[int, ...] | None = None,
    ) -> None:
        if n_markers not in _ANCHORS:
            raise ValueError("a synthetic scene has 2, 3 or 4 markers")
        self.width = width
        self.height = height
        self.config = config or DetectorConfig(
            camera=CameraModel.default(width, height)
        )
        self.camera = self.config.camera
        self.fps = fps
        self.marker_ids = tuple(marker_ids or DEFAULT_MARKER_IDS[:n_markers])
        if len(self.marker_ids) != n_markers:
            raise ValueError("marker_ids needs one id per marker")
        aruco_dict = cv2.aruco.getPredefinedDictionary(
            DICTIONARIES[self.config.dictionary]
        )
        if max(self.marker_ids) >= aruco_dict.bytesList.shape[0]:
            raise ValueError(
                f"marker ids {self.marker_ids} exceed {self.config.dictionary}"
            )
        self._bits = aruco_dict.markerSize + 2
        self._anchors = _ANCHORS[n_markers]
        self._camera_matrix = self.camera.matrix()
        self._dist = self.camera.dist_array()
        self._object_points = self.config.object_points()

    def poses(self, index: int) -> list[MarkerPose]:
        """True marker poses (and projected corners) of frame index, sorted by id."""
        t = index / self.fps
        truths = []
        for slot, marker_id in enumerate(self.marker_ids):
            phase = 2.1 * slot
            anchor_u, anchor_v = self._anchors[slot]
            # Depth sweeps 0.32-0.98 m; the marker stays near its anchor's ray so
            # markers never cross, and wobbles a few percent of the frame around it.
            z = 0.65 + 0.33 * math.sin(0.45 * t + phase)
            u = (anchor_u + 0.04 * math.sin(0.7 * t + 1.3 * phase)) * self.width
            v = (anchor_v + 0.04 * math.cos(0.6 * t + phase)) * self.height
            tvec = np.array(
                [
                    (u - self.camera.cx) / self.camera.fx * z,
                    (v - self.camera.cy) / self.camera.fy * z,
                    z,
                ]
            )
            # Seen 15-40 degrees off face-on, tilting about a turning axis, while the
            # marker spins in its plane. Never face-on: a small marker seen face-on
            # has an ambiguous tilt (IPPE's two solutions); that is the limit of the
            # method, which the scene should not hide but need not provoke.
            tilt = math.radians(27.5 + 12.5 * math.sin(0.5 * t + phase))
            tilt_axis = 0.4 * t + 1.7 * phase
            facing = _facing(tvec)
            axis = (
                math.cos(tilt_axis) * facing[:, 0] + math.sin(tilt_axis) * facing[:, 1]
            )
            tilting = cv2.Rodrigues(axis * tilt)[0]
            rotation = tilting @ facing @ _rotation(2, 0.3 * t + phase)
            rvec = cv2.Rodrigues(rotation)[0].reshape(3)
            corners, _ = cv2.projectPoints(
                self._object_points, rvec, tvec, self._camera_matrix, self._dist
            )
            truths.append(
                MarkerPose(
                    id=marker_id,
                    corners=corners.reshape(4, 2),
                    rvec=rvec,
                    tvec=tvec,
                    distance_m=float(np.linalg.norm(tvec)),
                )
            )
        truths.sort(key=lambda m: m.id)
        return truths

    def render(self, index: int) -> tuple[np.ndarray, list[MarkerPose]]:
        """Frame index as a BGR image, with its ground truth."""
        truths = self.poses(index)
        image = _background(self.width, self.height).copy()
        # Far to near, so a nearer marker would cover a farther one.
        for truth in sorted(truths, key=lambda m: -m.distance_m):
            self._draw_marker(image, truth)
        return image, truths

    def _draw_marker(self, image: np.ndarray, truth: MarkerPose) -> None:
        corners = truth.corners.astype(np.float64)
        shortest_side = min(
            float(np.linalg.norm(corners[i] - corners[(i + 1) % 4])) for i in range(4)
        )
        needed = shortest_side / self._bits
        pixels_per_bit = max(
            (p for p in _PIXELS_PER_BIT if p <= needed), default=_PIXELS_PER_BIT[0]
        )
        sprite = _marker_sprite(self.config.dictionary, truth.id, pixels_per_bit)
        # Source pixel centres are integers, so the black square's outer edges sit
        # half a pixel outside its first and last pixel.
        low = pixels_per_bit - 0.5
        high = pixels_per_bit * (self._bits + 1) - 0.5
        square = np.array(
            [[low, low], [high, low], [high, high], [low, high]], np.float32
        )
        homography = cv2.getPerspectiveTransform(square, corners.astype(np.float32))
        side = float(sprite.shape[0]) - 0.5
        outline = np.array(
            [[[-0.5, -0.5]], [[side, -0.5]], [[side, side]], [[-0.5, side]]]
        )
        projected = cv2.perspectiveTransform(outline, homography).reshape(4, 2)
        x0, y0 = np.floor(projected.min(axis=0)).astype(int)
        x1, y1 = np.ceil(projected.max(axis=0)).astype(int) + 1
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.width), min(y1, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        # BORDER_TRANSPARENT leaves pixels outside the sprite untouched: compositing
        # into the ROI in place, without a mask, is what keeps a frame near 1 ms.
        cv2.warpPerspective(
            sprite,
            shift @ homography,
            (x1 - x0, y1 - y0),
            dst=image[y0:y1, x0:x1],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT,
        )
        # Lens blur of about a pixel, as real optics have; it also removes the edge
        # aliasing of a sharp render, which biased sub-pixel corners by ~0.1 px.
        # Only around the marker: the background is smooth already and a full-frame
        # blur would cost more than the rest of the render.
        x0, y0 = max(x0 - 3, 0), max(y0 - 3, 0)
        x1, y1 = min(x1 + 3, self.width), min(y1 + 3, self.height)
        region = image[y0:y1, x0:x1]
        cv2.GaussianBlur(region, (5, 5), _BLUR_SIGMA, dst=region)
