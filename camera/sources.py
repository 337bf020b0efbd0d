"""Frame sources for the camera worker: devices, URLs, files, folders, synthetic."""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from camera.markers import DICTIONARIES, CameraModel, DetectorConfig, MarkerPose

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
_SPEC_HELP = (
    "pass a device index like 0, a video file, a folder of images, "
    "an rtsp:// or http(s):// URL, or 'synthetic'"
)


class SourceError(Exception):
    """A source cannot be opened or read; the message says what to fix."""


class SourceDropped(SourceError):
    """A live source (device or URL) stopped delivering frames; call reopen()."""


@dataclass(slots=True)
class Frame:
    """One BGR frame at the source's requested size."""

    image: np.ndarray
    captured_at: float  # epoch seconds, taken when the frame was read
    index: int  # frames returned so far by this source, from 0, across loops
    ground_truth: list[MarkerPose] | None = None  # synthetic sources only


class FrameSource:
    """Base of all sources: read() frames until None, close() when done.

    read() never sleeps: files, folders and synthetic scenes return frames as fast
    as they are asked for, so the caller paces them to its fps.
    """

    live = False
    native_fps: float | None = None

    def __init__(
        self, *, description: str, width: int, height: int, fps: float
    ) -> None:
        if width <= 0 or height <= 0:
            raise SourceError("width and height must be positive")
        if not (math.isfinite(fps) and fps > 0):
            raise SourceError("fps must be a positive number")
        self.description = description
        self.width = width
        self.height = height
        self.fps = fps
        self.closed = False
        self._index = 0

    def read(self) -> Frame | None:
        """The next frame, or None at the end (or after close()).

        Live sources raise SourceDropped instead of ending.
        """
        if self.closed:
            return None
        produced = self._next()
        if produced is None:
            return None
        image, ground_truth = produced
        frame = Frame(
            image=self._fit(image),
            captured_at=time.time(),
            index=self._index,
            ground_truth=ground_truth,
        )
        self._index += 1
        return frame

    def reopen(self) -> None:
        """Reconnect a live source, or restart a file source from its beginning."""
        self._release()
        self._open()
        self.closed = False

    def close(self) -> None:
        """Release the device or file; safe to call twice."""
        if not self.closed:
            self.closed = True
            self._release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description} {self.width}x{self.height}>"

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8:
            raise SourceError(f"{self.description}: frames must be 8-bit images")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        height, width = image.shape[:2]
        if (width, height) != (self.width, self.height):
            # INTER_AREA averages when shrinking (no aliasing); it is blurry upscaling.
            shrinking = width * height > self.width * self.height
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            image = cv2.resize(
                image, (self.width, self.height), interpolation=interpolation
            )
        return image

    def _next(self) -> tuple[np.ndarray, list[MarkerPose] | None] | None:
        raise NotImplementedError

    def _open(self) -> None:
        pass

    def _release(self) -> None:
        pass


class CaptureSource(FrameSource):
    """cv2.VideoCapture behind a device index, a URL or a video file."""

    def __init__(
        self,
        target: int | str,
        *,
        kind: str,
        width: int,
        height: int,
        fps: float,
        loop: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        description = f"camera device {target}" if kind == "device" else str(target)
        super().__init__(description=description, width=width, height=height, fps=fps)
        self.target = target
        self.kind = kind
        self.live = kind in ("device", "url")
        self.loop = loop
        self.timeout_s = timeout_s
        self._capture: cv2.VideoCapture | None = None
        self._pending: np.ndarray | None = None
        self._open()

    def _new_capture(self) -> cv2.VideoCapture:
        if self.kind == "url":
            # Without timeouts FFmpeg can block read() forever on a dead RTSP peer,
            # and the worker could never notice the drop and reconnect.
            timeout_ms = int(self.timeout_s * 1000)
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                timeout_ms,
            ]
            return cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params)
        if self.kind == "device":
            capture = cv2.VideoCapture(int(self.target))
            if capture.isOpened():
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
                capture.set(cv2.CAP_PROP_FPS, self.fps)
                # A one-frame driver queue keeps latency at one frame when we fall
                # behind, instead of serving seconds-old frames.
                capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            return capture
        return cv2.VideoCapture(str(self.target))

    def _open(self) -> None:
        capture = self._new_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceError(self._open_failure())
        ok, image = capture.read()
        if not ok or image is None:
            capture.release()
            raise SourceError(self._open_failure(opened=True))
        native = capture.get(cv2.CAP_PROP_FPS)
        self.native_fps = (
            float(native) if math.isfinite(native) and native > 0 else None
        )
        self._capture = capture
        # A live first frame is stale by the time read() is called; a file's is not.
        self._pending = None if self.live else image

    def _open_failure(self, opened: bool = False) -> str:
        if self.kind == "device":
            return (
                f"camera device {self.target} did not "
                f"{'deliver a frame' if opened else 'open'}: check that it exists "
                "(ls /dev/video*), is not used by another program and that this user "
                "may read it (group 'video'); or pass another index"
            )
        if self.kind == "url":
            return (
                f"could not {'read a frame from' if opened else 'connect to'} "
                f"{self.target} within {self.timeout_s:g} s: check the address, "
                "credentials and that the stream is up"
            )
        return (
            f"could not decode video file {self.target}: it is not a video OpenCV's "
            "FFmpeg can read (try re-encoding it to H.264 .mp4 or MJPG .avi)"
        )

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._pending = None

    def _next(self) -> tuple[np.ndarray, None] | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image, None
        if self._capture is None:
            if self.live:
                raise SourceDropped(f"{self.description} is not connected; reopen() it")
            return None
        ok, image = self._capture.read()
        if ok and image is not None:
            return image, None
        if self.live:
            self._release()
            raise SourceDropped(f"{self.description} stopped delivering frames")
        if not self.loop:
            self._release()
            return None
        # Reopening rewinds every container; seeking to frame 0 does not always.
        self._release()
        try:
            self._open()
        except SourceError:
            return None
        return self._next()


def _natural_key(path: Path) -> list[int | str]:
    # frame2.png before frame10.png, as a person numbering files expects.
    return [
        int(part) if part.isdigit() else part.lower()
        for part in re.split(r"(\d+)", path.name)
    ]


class ImageFolderSource(FrameSource):
    """Images of a folder (or one image file) in natural name order."""

    def __init__(
        self, path: Path, *, width: int, height: int, fps: float, loop: bool = False
    ) -> None:
        super().__init__(description=str(path), width=width, height=height, fps=fps)
        self.path = path
        self.loop = loop
        self.files: list[Path] = []
        self._position = 0
        self._open()

    def _open(self) -> None:
        if self.path.is_dir():
            files = [
                p
                for p in self.path.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            ]
        else:
            files = [self.path]
        if not files:
            extensions = " ".join(sorted(IMAGE_EXTENSIONS))
            raise SourceError(
                f"folder {self.path} holds no images: add files ending in {extensions}"
            )
        self.files = sorted(files, key=_natural_key)
        self._position = 0
        if cv2.imread(str(self.files[0]), cv2.IMREAD_COLOR) is None:
            raise SourceError(
                f"could not decode image {self.files[0]}: replace or remove it"
            )

    def _next(self) -> tuple[np.ndarray, None] | None:
        skipped = 0
        while skipped < len(self.files):
            if self._position >= len(self.files):
                if not self.loop:
                    return None
                self._position = 0
            path = self.files[self._position]
            self._position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return image, None
            # One bad file in a long sequence should not stop a stream.
            logger.warning("skipping unreadable image %s", path)
            skipped += 1
        raise SourceError(f"no image in {self.path} can be decoded any more")


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


class SyntheticSource(FrameSource):
    """An endless SyntheticScene; every frame carries its ground truth."""

    def __init__(self, scene: SyntheticScene) -> None:
        super().__init__(
            description=f"synthetic:{len(scene.marker_ids)}",
            width=scene.width,
            height=scene.height,
            fps=scene.fps,
        )
        self.scene = scene
        self.native_fps = scene.fps

    def _next(self) -> tuple[np.ndarray, list[MarkerPose]]:
        return self.scene.render(self._index)


def open_source(
    spec: str,
    *,
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    loop: bool = False,
    config: DetectorConfig | None = None,
    timeout_s: float = 10.0,
) -> FrameSource:
    """Open what --source names; raises SourceError saying what to fix.

    spec: a device index ("0"), a video file, an image file or folder of images,
    an rtsp/rtsps/rtmp/http(s) URL, or "synthetic" / "synthetic:<2-4 markers>".
    config gives a synthetic scene its dictionary, marker length and camera.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError(f"empty source: {_SPEC_HELP}")
    lowered = spec.lower()
    if lowered == "synthetic" or lowered.startswith("synthetic:"):
        count = lowered.partition(":")[2] or "3"
        if count not in ("2", "3", "4"):
            raise SourceError("synthetic:<n> takes 2, 3 or 4 markers")
        scene = SyntheticScene(
            width, height, config=config, n_markers=int(count), fps=fps
        )
        return SyntheticSource(scene)
    if spec.isdigit():
        return CaptureSource(
            int(spec),
            kind="device",
            width=width,
            height=height,
            fps=fps,
            timeout_s=timeout_s,
        )
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", spec)
    if scheme:
        if scheme.group(1).lower() not in URL_SCHEMES:
            schemes = ", ".join(URL_SCHEMES)
            raise SourceError(f"unsupported URL scheme in {spec!r}: use {schemes}")
        return CaptureSource(
            spec, kind="url", width=width, height=height, fps=fps, timeout_s=timeout_s
        )
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"{path} does not exist: {_SPEC_HELP}")
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFolderSource(path, width=width, height=height, fps=fps, loop=loop)
    if not path.is_file():
        raise SourceError(f"{path} is neither a file nor a folder: {_SPEC_HELP}")
    return CaptureSource(
        str(path), kind="file", width=width, height=height, fps=fps, loop=loop
    )
