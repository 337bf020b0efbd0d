"""Frame sources for the camera worker: devices, URLs, files, folders, synthetic."""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from camera.markers import DetectorConfig, MarkerPose
from camera.synthetic import SyntheticScene

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
