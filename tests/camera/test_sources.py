"""Frame sources: image folders, video files, devices, live drops, synthetic scenes."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera import sources
from camera.markers import CameraModel, DetectorConfig
from camera.sources import SourceDropped, SourceError, open_source
from camera.synthetic import SyntheticScene

pytestmark = pytest.mark.timeout(60)


def solid(width: int, height: int, level: int) -> np.ndarray:
    return np.full((height, width, 3), level, np.uint8)


def write_video(path: Path, levels: list[int], size: tuple[int, int] = (160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened(), "OpenCV's built-in MJPG/AVI writer should always work"
    for level in levels:
        writer.write(solid(*size, level))
    writer.release()


def level_of(frame) -> int:
    return round(float(frame.image.mean()))


def test_image_folder_in_natural_order_resized(tmp_path: Path) -> None:
    for name, level in [("frame10.png", 30), ("frame2.png", 20), ("frame1.png", 10)]:
        cv2.imwrite(str(tmp_path / name), solid(320, 240, level))
    (tmp_path / "notes.txt").write_text("not an image")

    with open_source(str(tmp_path), width=160, height=120) as source:
        frames = [source.read() for _ in range(3)]
        assert source.read() is None

    assert [level_of(f) for f in frames] == [10, 20, 30]
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(f.image.shape == (120, 160, 3) for f in frames)
    assert all(f.ground_truth is None for f in frames)
    assert all(abs(f.captured_at - time.time()) < 60 for f in frames)


def test_image_folder_loops_and_converts_grey(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.full((100, 100), 50, np.uint8))
    cv2.imwrite(str(tmp_path / "b.jpg"), solid(100, 100, 200))

    source = open_source(str(tmp_path), width=64, height=48, loop=True)
    frames = [source.read() for _ in range(5)]
    source.close()

    assert [level_of(f) for f in frames] == [50, 200, 50, 200, 50]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].image.shape == (48, 64, 3)
    assert source.read() is None  # closed


def test_image_folder_skips_an_unreadable_file(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "1.png"), solid(32, 32, 40))
    (tmp_path / "2.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "3.png"), solid(32, 32, 80))

    with open_source(str(tmp_path), width=32, height=32) as source:
        assert [level_of(source.read()), level_of(source.read())] == [40, 80]
        assert source.read() is None


def test_single_image_file(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), solid(64, 48, 90))

    with open_source(str(path), width=64, height=48) as source:
        assert level_of(source.read()) == 90
        assert source.read() is None


def test_video_file_plays_once_then_ends(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, [0, 60, 120, 180])

    with open_source(str(path), width=320, height=240) as source:
        assert not source.live
        assert source.native_fps == pytest.approx(10.0)
        frames = [source.read() for _ in range(4)]
        assert source.read() is None
        assert source.read() is None

    # MJPG is lossy; flat frames still come back within a few grey levels.
    assert [level_of(f) for f in frames] == pytest.approx([0, 60, 120, 180], abs=3)
    assert all(f.image.shape == (240, 320, 3) for f in frames)  # upscaled


def test_video_file_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, [0, 100, 200])

    with open_source(str(path), width=160, height=120, loop=True) as source:
        frames = [source.read() for _ in range(8)]

    assert [level_of(f) for f in frames] == pytest.approx(
        [0, 100, 200, 0, 100, 200, 0, 100], abs=3
    )
    assert [f.index for f in frames] == list(range(8))


def test_video_file_reopen_restarts(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, [0, 100, 200])

    with open_source(str(path), width=160, height=120) as source:
        source.read()
        source.read()
        source.reopen()
        assert level_of(source.read()) == pytest.approx(0, abs=3)


def test_missing_path_says_what_to_pass(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "clip.mp4"

    with pytest.raises(SourceError) as error:
        open_source(str(missing))

    message = str(error.value)
    assert str(missing) in message and "does not exist" in message
    assert "device index" in message and "synthetic" in message


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")

    with pytest.raises(SourceError, match="holds no images.*\\.png"):
        open_source(str(tmp_path))


def test_unreadable_video_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00garbage" * 100)

    with pytest.raises(SourceError, match="could not decode video file"):
        open_source(str(path))


def test_device_that_does_not_open() -> None:
    with pytest.raises(SourceError, match="camera device 99 did not open") as error:
        open_source("99")
    assert "/dev/video" in str(error.value)


def test_unsupported_url_scheme_and_empty_spec() -> None:
    with pytest.raises(SourceError, match="rtsp"):
        open_source("ftp://example.com/stream")
    with pytest.raises(SourceError, match="device index"):
        open_source("  ")
    with pytest.raises(SourceError, match="2, 3 or 4"):
        open_source("synthetic:9")


def test_unreachable_url_fails_fast() -> None:
    # Port 9 on loopback refuses connections: no network, no waiting on a timeout.
    started = time.monotonic()
    with pytest.raises(SourceError, match="could not connect to http://127.0.0.1:9/"):
        open_source("http://127.0.0.1:9/video.mjpg", timeout_s=3.0)
    assert time.monotonic() - started < 10


class FakeCapture:
    """A camera that delivers `frames_left` frames per connection, then fails."""

    connections = 0
    frames_per_connection = 3

    def __init__(self, *args, **kwargs) -> None:
        type(self).connections += 1
        self.frames_left = self.frames_per_connection
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's spelling
        return not self.released

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 30.0

    def read(self):
        if self.frames_left == 0:
            return False, None
        self.frames_left -= 1
        return True, solid(1280, 720, 77)

    def release(self) -> None:
        self.released = True


def test_live_device_drop_raises_and_reopen_reconnects(monkeypatch) -> None:
    FakeCapture.connections = 0
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCapture)

    source = open_source("0", width=640, height=480)
    assert source.live
    # The opening check consumed one frame; the stale frame is not served.
    frames = [source.read(), source.read()]
    with pytest.raises(SourceDropped, match="camera device 0 stopped"):
        source.read()
    with pytest.raises(SourceDropped):
        source.read()  # still down until reopened
    source.reopen()
    after = source.read()
    source.close()

    assert FakeCapture.connections == 2
    assert all(f.image.shape == (480, 640, 3) for f in frames)  # downscaled
    assert [f.index for f in frames + [after]] == [0, 1, 2]
    assert isinstance(SourceDropped("x"), SourceError)


def test_synthetic_is_deterministic_with_ground_truth() -> None:
    config = DetectorConfig(
        camera=CameraModel.default(320, 240),
        dictionary="DICT_5X5_100",
        marker_length_m=0.08,
    )
    first = open_source("synthetic", width=320, height=240, config=config)
    second = open_source("synthetic:3", width=320, height=240, config=config)

    a = [first.read() for _ in range(5)]
    b = [second.read() for _ in range(5)]

    for frame_a, frame_b in zip(a, b, strict=True):
        assert np.array_equal(frame_a.image, frame_b.image)
        assert frame_a.image.shape == (240, 320, 3)
        assert [t.id for t in frame_a.ground_truth] == [3, 7, 12]
        for truth in frame_a.ground_truth:
            assert 0.3 <= truth.distance_m <= 1.0
            assert truth.rvec.shape == (3,) and truth.tvec.shape == (3,)
    assert not np.array_equal(a[0].image, a[4].image)  # it moves
    scene = first.scene
    assert np.array_equal(scene.render(4)[0], a[4].image)  # frame k is frame k
    first.close()
    second.close()


def test_synthetic_scene_marker_counts_and_speed() -> None:
    for count in (2, 3, 4):
        scene = SyntheticScene(640, 480, n_markers=count)
        assert len(scene.poses(0)) == count
    scene = SyntheticScene(640, 480, n_markers=4)
    scene.render(0)  # sprites and background cached

    started = time.perf_counter()
    for index in range(30):
        scene.render(index)
    per_frame_ms = (time.perf_counter() - started) / 30 * 1000

    assert per_frame_ms < 10  # typically ~1-2 ms: room for 30 fps with detection
    with pytest.raises(ValueError):
        SyntheticScene(n_markers=5)
