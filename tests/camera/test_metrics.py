"""The camera's metrics: viewers' flow control on the server, the worker's own port."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from camera.metrics import WorkerMeters
from realtime.metrics import sample
from tests.camera.conftest import open_publisher, open_viewer, publish
from tests.conftest import recv_type, send
from tests.e2e.server import free_port

pytestmark = pytest.mark.timeout(60)


def dropped(reason: str) -> float:
    return sample(
        "realtime_stream_frames_dropped_total", {"kind": "raw", "reason": reason}
    )


@pytest.mark.django_db(transaction=True)
async def test_frames_sent_and_dropped_by_kind(stream, token, settings):
    settings.STREAM_MAX_IN_FLIGHT = 2
    before = (
        sample("realtime_stream_frames_sent_total", {"kind": "raw"}),
        dropped("skipped"),
        dropped("replaced"),
    )
    thinned = await open_viewer("cam", token=token, max_fps=1)
    behind = await open_viewer("cam", token=token)
    publisher = await open_publisher(stream)
    for seq in range(1, 6):  # within a fraction of a second
        await publish(publisher, seq)
    await send(publisher, "ping", {})
    await recv_type(publisher, "pong")
    await asyncio.sleep(0.05)
    after = (
        sample("realtime_stream_frames_sent_total", {"kind": "raw"}),
        dropped("skipped"),
        dropped("replaced"),
    )
    # thinned: 1 sent, 4 over its max_fps. behind (acks nothing): 2 in flight, then
    # 3 waits, 4 replaces it, 5 replaces 4.
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 4, 2]
    for comm in (thinned, behind, publisher):
        await comm.disconnect()


def run(*args: str) -> str:
    out = StringIO()
    call_command("runcamera", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_worker_serves_fps_detection_and_encoding_on_its_port():
    port = free_port()
    out = run(
        "cam",
        "--source",
        "synthetic",
        "--dry-run",
        "--max-frames",
        "3",
        "--fps",
        "200",
        "--report-every",
        "0.001",
        "--metrics-port",
        str(port),
    )
    assert f"metrics on http://127.0.0.1:{port}/metrics" in out
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'realtime_camera_frames_total{stream="cam"} 3.0' in text
    assert 'realtime_camera_detect_seconds_count{stream="cam"} 3.0' in text
    assert 'realtime_camera_encode_seconds_count{stream="cam"} 3.0' in text
    assert 'realtime_camera_markers{stream="cam"}' in text
    assert sample("realtime_camera_fps", {"stream": "cam"}) > 0


@pytest.mark.django_db
def test_a_taken_metrics_port_or_a_bad_one_is_a_command_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with pytest.raises(CommandError, match="--metrics-port"):
            run("cam", "--source", "synthetic", "--dry-run", "--metrics-port", port)
    with pytest.raises(CommandError, match="--metrics-port is 0-65535"):
        run("cam", "--source", "synthetic", "--dry-run", "--metrics-port", "70000")


def test_a_frame_not_published_counts_as_dropped():
    meters = WorkerMeters("unpublished")
    meters.frame(detect_ms=2.0, encode_ms=3.0, markers=1, published=False)
    labels = {"stream": "unpublished"}
    assert sample("realtime_camera_frames_dropped_total", labels) == 1
    assert sample("realtime_camera_encode_seconds_sum", labels) == 0.003
