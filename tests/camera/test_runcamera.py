"""``manage.py runcamera``: flags, the stream row, sources, the worker loop, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from camera import worker as worker_module
from camera.markers import CameraModel, DetectorConfig
from camera.models import Stream
from camera.publisher import NullPublisher, PublishedFrame
from camera.sources import FrameSource, SourceDropped, SourceError, open_source
from camera.worker import Worker, WorkerConfig, WorkerFailed
from tests.services import redis_url

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


def run(*args: str) -> str:
    out = StringIO()
    call_command("runcamera", *args, stdout=out)
    return out.getvalue()


def test_dry_run_creates_the_stream_and_reports():
    out = run(
        "cam",
        "--source",
        "synthetic",
        "--dry-run",
        "--max-frames",
        "4",
        "--fps",
        "200",
        "--report-every",
        "0.001",
    )
    assert "cam: created the stream" in out
    assert "synthetic:3 at 640x480, 200 fps, kinds raw,annotated" in out
    assert "dry run" in out
    assert "fps, detect" in out  # a periodic report line
    assert "--max-frames 4 reached: 4 frames" in out
    stream = Stream.objects.get(slug="cam")
    assert stream.source == "synthetic" and stream.fps == 200
    assert len(stream.publish_token) >= 40


def test_flags_override_the_row_and_are_saved():
    Stream.objects.create(slug="cam", source="synthetic", title="old")
    out = run(
        "cam",
        "--dry-run",
        "--max-frames",
        "2",
        "--fps",
        "100",
        "--width",
        "320",
        "--height",
        "240",
        "--kinds",
        "annotated",
        "--dictionary",
        "DICT_5X5_100",
        "--marker-length",
        "0.08",
        "--camera-matrix",
        "300,300,160,120",
        "--dist-coeffs",
        "0.01,0,0,0,0",
        "--title",
        "Lab",
    )
    assert "synthetic:3 at 320x240" in out and "DICT_5X5_100 0.08 m" in out
    stream = Stream.objects.get(slug="cam")
    assert (stream.width, stream.height, stream.kinds) == (320, 240, ["annotated"])
    assert stream.camera_matrix == {"fx": 300, "fy": 300, "cx": 160, "cy": 120}
    assert stream.dist_coeffs == [0.01, 0, 0, 0, 0]
    assert stream.title == "Lab" and stream.source == "synthetic"
    assert stream.camera_model().dist[0] == 0.01
    run("cam", "--dry-run", "--max-frames", "1", "--dist-coeffs", "0,0,0,0,0")
    assert Stream.objects.get(slug="cam").dist_coeffs == [0.0] * 5


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["bad.id"], "use 1-64 letters"),
        (["--fps", "0"], "--fps must be a positive number"),
        (["--max-frames", "0"], "--max-frames must be a positive number"),
        (["--marker-length", "-1"], "--marker-length must be a positive"),
        (["--quality", "101"], "--quality is 1-100"),
        (["--fps", "fast"], "invalid float value"),
        (["--dictionary", "DICT_9X9"], "unknown ArUco dictionary"),
        (["--kinds", "raw,depth"], "--kinds raw,depth"),
        (["--kinds", ","], "--kinds ,"),
        (["--camera-matrix", "1,2,3"], "--camera-matrix: camera matrix (fx,fy,cx,cy)"),
        (["--camera-matrix=-1,1,0,0"], "--camera-matrix: fx and fy must be"),
        (["--dist-coeffs", "1,2"], "--dist-coeffs: distortion"),
        (["--token", "abc"], "--token goes with --server"),
        (["--server", "ftp://x"], "ws:// or wss://"),
    ],
)
def test_operator_mistakes_are_command_errors(args, fragment):
    if not args[0].startswith("-"):
        stream, args = args[0], args[1:]
    else:
        stream = "cam"
    with pytest.raises(CommandError) as info:
        run(stream, "--source", "synthetic", "--max-frames", "1", *args)
    assert fragment in str(info.value)


def test_without_redis_or_server_it_says_how_to_publish():
    with pytest.raises(CommandError, match="REDIS_URL is not set.*--server"):
        run("cam", "--source", "synthetic", "--max-frames", "1")


def test_a_stream_without_a_saved_source_needs_one():
    with pytest.raises(CommandError, match="has no saved source: pass --source"):
        run("cam", "--dry-run")


def test_the_row_must_make_sense():
    Stream.objects.create(slug="cam", source="synthetic")
    Stream.objects.filter(slug="cam").update(kinds=["thermal"])  # behind its back
    with pytest.raises(CommandError, match="kinds: A list of distinct kinds"):
        run("cam", "--dry-run", "--max-frames", "1")
    with pytest.raises(CommandError, match="title: Ensure this value"):
        run("cam", "--dry-run", "--kinds", "raw", "--title", "x" * 201)


def test_missing_and_unreadable_sources(tmp_path: Path):
    with pytest.raises(CommandError, match=r"--source .*nope.mp4: .* does not exist"):
        run("cam", "--source", str(tmp_path / "nope.mp4"), "--max-frames", "1")
    assert not Stream.objects.exists()  # nothing saved for a run that never began
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    with pytest.raises(CommandError, match="could not decode video file"):
        run("cam", "--source", str(broken), "--dry-run")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CommandError, match="holds no images"):
        run("cam", "--source", str(empty), "--dry-run")
    with pytest.raises(CommandError, match="camera device 57 did not open"):
        run("cam", "--source", "57", "--dry-run")


def test_an_image_folder_ends_the_run(tmp_path: Path):
    scene = open_source("synthetic", width=640, height=480)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), scene.read().image)
    out = run("cam", "--source", str(tmp_path), "--dry-run", "--fps", "500")
    assert "end of source: 3 frames" in out
    assert "3 markers" in out  # found in every image


def test_server_unreachable_is_a_command_error():
    with pytest.raises(CommandError, match="could not connect to ws://127.0.0.1:9/"):
        run(
            "cam",
            "--source",
            "synthetic",
            "--server",
            "http://127.0.0.1:9",
            "--connect-timeout",
            "0.2",
        )


def test_token_mode_needs_no_database(monkeypatch, django_assert_num_queries):
    """With --token the flags alone describe the stream: no row is read or made."""
    seen = {}

    class Recorder(NullPublisher):
        def __init__(self, url, token, **kwargs):
            seen.update(url=url, token=token)

    monkeypatch.setattr(
        "camera.management.commands.runcamera.SocketPublisher", Recorder
    )
    with django_assert_num_queries(0):
        out = run(
            "cam",
            "--source",
            "synthetic:2",
            "--server",
            "wss://example.org/",
            "--token",
            "tok",
            "--max-frames",
            "1",
            "--kinds",
            "raw",
        )
    assert seen == {"url": "wss://example.org/ws/streams/cam/publish/", "token": "tok"}
    assert "synthetic:2" in out and not Stream.objects.exists()
    with pytest.raises(CommandError, match="title: Ensure this value"):
        run(
            "cam",
            "--source",
            "x",
            "--server",
            "ws://x",
            "--token",
            "t",
            "--title",
            "x" * 201,
        )


@pytest.mark.parametrize("fanout", ["hub", "layer"])
def test_redis_path_publishes_to_the_group(settings, fanout):
    settings.REDIS_URL = redis_url()
    settings.REALTIME_FANOUT = fanout
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [settings.REDIS_URL]},
        }
    }
    out = run("cam", "--source", "synthetic", "--max-frames", "2", "--fps", "100")
    assert "publishing to the group on Redis" in out
    assert "--max-frames 2 reached: 2 frames" in out


def test_sigint_stops_the_worker_cleanly():
    timer = threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        out = run("cam", "--source", "synthetic", "--dry-run", "--duration", "20")
    finally:
        timer.cancel()
    assert "SIGINT: stopping" in out
    assert "cam: stopped: " in out


def test_duration_bounds_a_run():
    out = run("cam", "--source", "synthetic", "--dry-run", "--duration", "0.2")
    assert "--duration 0.2 s reached" in out


# ---------------------------------------------------------------- the worker loop
def config(**extra) -> WorkerConfig:
    detector = DetectorConfig(camera=CameraModel.default(64, 48))
    return WorkerConfig(stream_id="cam", detector=detector, **extra)


class ScriptedSource(FrameSource):
    """Frames, drops and failures in a given order; reopen() may fail too."""

    live = True

    def __init__(self, script, reopen_failures: int = 0):
        super().__init__(description="scripted", width=64, height=48, fps=30)
        self.script = list(script)
        self.reopen_failures = reopen_failures
        self.reopened = 0

    def _next(self):
        step = self.script.pop(0) if self.script else None
        if step is None:
            return None
        if isinstance(step, Exception):
            raise step
        return np.full((48, 64, 3), step, np.uint8), None

    def _open(self):
        if self.reopen_failures:
            self.reopen_failures -= 1
            raise SourceError("still down")
        self.reopened += 1


class Collecting(NullPublisher):
    def __init__(self):
        self.frames: list[PublishedFrame] = []
        self.closed = False

    async def publish(self, frame):
        self.frames.append(frame)
        return len(self.frames) % 2 == 1  # every other one "dropped"

    async def close(self):
        self.closed = True


@pytest.fixture
def quick_backoff(monkeypatch):
    def fast(first=0.001, cap=0.001):
        while True:
            yield 0.001

    monkeypatch.setattr(worker_module, "backoff_delays", fast)


def test_worker_reconnects_a_dropped_source(quick_backoff):
    source = ScriptedSource([10, SourceDropped("cable out"), 20, 30], reopen_failures=2)
    publisher = Collecting()
    said: list[str] = []
    result = asyncio.run(
        Worker(config(fps=1000), source, publisher, say=said.append).run(
            asyncio.Event()
        )
    )
    assert result.frames == 3 and result.reason == "end of source"
    assert result.dropped == 1 and publisher.closed and source.closed
    assert [f.seq for f in publisher.frames] == [1, 2, 3]
    assert publisher.frames[0].poses == {
        "seq": 1,
        "captured_at": publisher.frames[0].captured_at,
        "markers": [],
        "transforms": [],
    }
    assert set(publisher.frames[0].jpeg) == {"raw", "annotated"}
    assert "cam: source dropped: cable out" in said
    assert said.count("cam: reconnect failed: still down") == 2
    assert "cam: source reconnected" in said
    assert said[-1].startswith("cam: end of source: 3 frames")


def test_worker_stops_while_waiting_to_reconnect():
    source = ScriptedSource([SourceDropped("gone")])
    stop = asyncio.Event()

    async def main():
        asyncio.get_running_loop().call_later(0.05, stop.set)
        return await Worker(config(), source, Collecting(), say=lambda _: None).run(
            stop
        )

    result = asyncio.run(main())
    assert result.frames == 0 and result.reason == "stopped"


def test_worker_failures(monkeypatch):
    with pytest.raises(WorkerFailed, match="no image can be decoded"):
        asyncio.run(
            Worker(
                config(),
                ScriptedSource([SourceError("no image can be decoded")]),
                Collecting(),
                say=lambda _: None,
            ).run(asyncio.Event())
        )
    refused = Collecting()
    refused.failure = "the server refused the publish token (close 4001)"
    with pytest.raises(WorkerFailed, match="refused the publish token"):
        asyncio.run(
            Worker(config(), ScriptedSource([1, 2]), refused, say=print).run(
                asyncio.Event()
            )
        )


def test_worker_paces_to_its_fps():
    source = ScriptedSource([1] * 6)
    said: list[str] = []
    result = asyncio.run(
        Worker(config(fps=50), source, Collecting(), say=said.append).run(
            asyncio.Event()
        )
    )
    assert result.frames == 6 and result.seconds >= 5 / 50 * 0.9


def test_a_worker_that_does_not_stop_in_time_is_cancelled(monkeypatch):
    monkeypatch.setattr("camera.management.commands.runcamera.STOP_GRACE_S", 0.05)

    async def stubborn(self, stop):
        await asyncio.sleep(20)  # ignores stop: the grace period cancels it

    monkeypatch.setattr(Worker, "run", stubborn)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        out = run("cam", "--source", "synthetic", "--dry-run")
    finally:
        timer.cancel()
    assert "SIGTERM: stopping" in out and out.endswith("cam: stopped\n")


def test_outside_the_main_thread_it_runs_without_signal_handlers(monkeypatch):
    monkeypatch.setattr(
        "camera.management.commands.runcamera.SocketPublisher",
        lambda url, token, **kwargs: NullPublisher(),
    )
    outcome = {}

    def target():  # --token: no database from this thread
        outcome["out"] = run(
            "cam",
            "--source",
            "synthetic",
            "--server",
            "ws://x",
            "--token",
            "t",
            "--max-frames",
            "2",
        )

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert "--max-frames 2 reached" in outcome["out"]


def test_a_second_signal_stops_at_once(monkeypatch):
    async def stubborn(self, stop):
        await asyncio.sleep(20)

    monkeypatch.setattr(Worker, "run", stubborn)
    timers = [
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        for delay in (0.5, 0.8)
    ]
    for timer in timers:
        timer.start()
    started = time.monotonic()
    try:
        out = run("cam", "--source", "synthetic", "--dry-run")
    finally:
        for timer in timers:
            timer.cancel()
    assert out.count("SIGINT: stopping") == 1 and out.endswith("cam: stopped\n")
    assert time.monotonic() - started < 3.0  # well before the 3 s grace period
