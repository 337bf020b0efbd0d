"""Camera streams end to end: real daphne, ``runcamera`` processes, real viewers.

Both publishing paths: the ingest socket (in-memory channel layer, as ``make run``)
and straight to the group on a shared Redis.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from io import StringIO

import cv2
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from websockets.asyncio.client import connect

from tests.e2e.server import ROOT, DaphneServer
from tests.services import chromium_path, redis_url

pytestmark = pytest.mark.timeout(120)


def prepare(server: DaphneServer, username: str, streams: dict[str, dict]) -> dict:
    """A user's access token and the publish token of each new stream, in one go
    (each ``manage.py shell`` costs seconds)."""
    out = server.python(
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework_simplejwt.tokens import AccessToken\n"
        "from camera.models import Stream\n"
        f"u = get_user_model().objects.create_user({username!r})\n"
        f"streams = {streams!r}\n"
        "tokens = {slug: Stream.objects.create(slug=slug, **fields).publish_token"
        " for slug, fields in streams.items()}\n"
        "print(json.dumps({'access': str(AccessToken.for_user(u)), **tokens}))\n"
    )
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with DaphneServer(tmp_path_factory.mktemp("e2e-camera")) as srv:
        srv.tokens = prepare(
            srv,
            "alice",
            {
                "e2e-ingest": {},
                "e2e-token": {"public": True, "kinds": ["raw"]},
                "e2e-page": {"public": True, "title": "Page camera"},
            },
        )
        yield srv


def runcamera(server: DaphneServer, *args: str) -> subprocess.Popen:
    """``manage.py runcamera`` in its own process, on the server's database."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "runcamera", *args],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def get(server: DaphneServer, path: str, token: str | None = None):
    request = urllib.request.Request(server.url(path))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


async def subscribed(url: str, payload: dict):
    # An unbounded queue: a viewer that stops reading its messages here must not
    # also stop websockets from reading the socket (its close frame included).
    ws = await connect(url, open_timeout=10, max_size=None, max_queue=None)
    info = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert info["type"] == "stream.info"
    await ws.send(json.dumps({"type": "stream.subscribe", "payload": payload}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["type"] == "stream.subscribed", reply
    return ws


async def watch(ws, frames: int, *, ack: bool = True, timeout: float = 60):
    """(frames, poses, seconds from the first frame to the last) of one viewer."""
    got, poses, header, first = [], [], None, None
    async with asyncio.timeout(timeout):
        while len(got) < frames:
            message = await ws.recv()
            if isinstance(message, bytes):
                assert header is not None and len(message) == header["bytes"]
                got.append((header, message))
                first = first or time.monotonic()
                if ack:
                    await ws.send(
                        json.dumps(
                            {"type": "frame.ack", "payload": {"seq": header["seq"]}}
                        )
                    )
                header = None
                continue
            envelope = json.loads(message)
            if envelope["type"] == "frame":
                header = envelope["payload"]
            elif envelope["type"] == "poses":
                poses.append(envelope["payload"])
            elif envelope["type"] == "ping":
                await ws.send(
                    json.dumps({"type": "pong", "payload": envelope["payload"]})
                )
    return got, poses, time.monotonic() - first


def check_frames(frames, poses, kind: str, marker_ids: set[int]) -> None:
    seqs = [header["seq"] for header, _ in frames]
    assert seqs == sorted(seqs)
    for header, data in frames:
        assert header["kind"] == kind
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (480, 640, 3)
    assert poses, "poses arrive with the frames"
    for payload in poses:
        assert {m["id"] for m in payload["markers"]} == marker_ids
        for marker in payload["markers"]:
            assert 0.25 < marker["distance_m"] < 1.1  # the scene's 0.32-0.98 m
        n = len(marker_ids)
        assert len(payload["transforms"]) == n * (n - 1) // 2


async def test_worker_publishes_through_the_ingest_socket(server):
    access = server.tokens["access"]
    url = server.ws_url(f"/ws/streams/e2e-ingest/?token={access}")
    annotated = {"kinds": ["annotated"], "poses": True}
    viewer = await subscribed(url, annotated)
    never_acks = await subscribed(url, annotated)
    leaves = await subscribed(url, {"kinds": ["raw"], "poses": False})
    worker = runcamera(
        server,
        "e2e-ingest",
        "--source",
        "synthetic",
        "--server",
        server.ws_url(""),
        "--fps",
        "15",
        "--report-every",
        "1",
    )
    try:
        async with asyncio.timeout(60):  # one leaves mid-frame: header read, no JPEG
            while json.loads(await leaves.recv())["type"] != "frame":
                pass
        await leaves.close()
        frames, poses, seconds = await watch(viewer, 30)
        stalled, stalled_poses, _ = await watch(never_acks, 2, ack=False)
        extra = []
        try:  # what else reaches the viewer that never acknowledges, for a second
            async with asyncio.timeout(1.0):
                while True:
                    extra.append(await never_acks.recv())
        except TimeoutError:
            pass
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(worker.communicate, timeout=30)
        await viewer.close()
        await never_acks.close()
    assert worker.returncode == 0, out
    assert "publishing over ws://127.0.0.1" in out and "SIGTERM: stopping" in out
    assert "e2e-ingest: stopped: " in out and "fps, detect" in out

    check_frames(frames, poses, "annotated", {3, 7, 12})
    fps = (len(frames) - 1) / seconds
    assert fps > 10, f"an acking viewer keeps the frame rate: {fps:.1f} of 15"
    assert len(stalled) == 2  # STREAM_MAX_IN_FLIGHT, then nothing
    assert not any(isinstance(m, bytes) for m in extra)
    assert all(json.loads(m)["type"] == "poses" for m in extra) and extra

    token = server.tokens["access"]
    status, headers, body = get(server, "/api/streams/e2e-ingest/images/raw.jpg", token)
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"
    status, _, body = get(server, "/api/streams/e2e-ingest/transforms/", token)
    assert status == 200
    assert {m["id"] for m in json.loads(body)["markers"]} == {3, 7, 12}
    status, _, body = get(server, "/api/streams/e2e-ingest/status/", token)
    assert status == 200 and json.loads(body)["last_frame_at"].endswith("Z")


def test_runcamera_over_the_ingest_socket_in_this_process(server):
    """The worker's socket client against real daphne (and its refusals)."""
    token = server.tokens["e2e-token"]
    out = StringIO()
    call_command(
        "runcamera",
        "e2e-token",
        "--source",
        "synthetic:2",
        "--server",
        server.ws_url("/"),
        "--token",
        token,
        "--kinds",
        "raw",
        "--max-frames",
        "10",
        "--fps",
        "30",
        stdout=out,
    )
    assert "--max-frames 10 reached: 10 frames" in out.getvalue()
    assert "0 dropped" in out.getvalue()
    for _ in range(50):  # the server records the latest frame as it passes
        status, _, body = get(server, "/api/streams/e2e-token/transforms/")
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200 and {m["id"] for m in json.loads(body)["markers"]} == {3, 7}

    base = ["--source", "synthetic", "--server", server.ws_url(""), "--max-frames", "1"]
    with pytest.raises(CommandError, match=r"refused the publish token \(close 4001\)"):
        call_command("runcamera", "e2e-token", *base, "--token", "x" * 43)
    with pytest.raises(CommandError, match=r"has no such stream \(close 4004\)"):
        call_command("runcamera", "e2e-missing", *base, "--token", token)


def test_worker_publishes_straight_to_the_group_on_redis(tmp_path):
    env = {
        "REDIS_URL": redis_url(),
        "CACHE_KEY_PREFIX": f"e2e-cam-{uuid.uuid4().hex[:8]}",
    }
    with DaphneServer(tmp_path, env=env) as server:
        tokens = prepare(server, "bob", {"e2e-redis": {}})
        url = server.ws_url(f"/ws/streams/e2e-redis/?token={tokens['access']}")

        async def scenario():
            viewer = await subscribed(url, {"kinds": ["raw"], "poses": True})
            worker = runcamera(
                server, "e2e-redis", "--source", "synthetic", "--fps", "15"
            )
            try:
                frames, poses, seconds = await watch(viewer, 20)
            finally:
                worker.send_signal(signal.SIGINT)
                out, _ = await asyncio.to_thread(worker.communicate, timeout=30)
                await viewer.close()
            return frames, poses, seconds, worker.returncode, out

        frames, poses, seconds, code, out = asyncio.run(scenario())
        assert code == 0, out
        assert "publishing to the group on Redis" in out
        check_frames(frames, poses, "raw", {3, 7, 12})
        assert (len(frames) - 1) / seconds > 10
        # The worker recorded the latest frame in the shared cache: any server
        # process answers REST from it.
        status, headers, body = get(
            server, "/api/streams/e2e-redis/images/annotated.jpg", tokens["access"]
        )
        assert status == 200 and body[:2] == b"\xff\xd8"


def test_the_viewer_page_draws_frames_and_markers(server):
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api")
    worker = runcamera(
        server,
        "e2e-page",
        "--source",
        "synthetic",
        "--server",
        server.ws_url(""),
        "--fps",
        "10",
    )
    errors: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable,
                args=["--no-sandbox", "--disable-gpu"],
                timeout=15_000,
            )
            try:
                page = browser.new_page()
                page.set_default_timeout(30_000)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(server.url("/streams/e2e-page/"))
                expect = sync_api.expect
                expect(page.locator("#connection")).to_have_text("connected")
                expect(page.locator("#markers tbody tr")).to_have_count(3)
                expect(page.locator("#seq")).to_have_text(re.compile(r"^\d+$"))
                first = int(page.locator("#seq").inner_text())
                expect(page.locator("#seq")).not_to_have_text(str(first))  # acked
                size = page.evaluate(
                    "() => [document.getElementById('canvas').width,"
                    " document.getElementById('canvas').height]"
                )
                assert size == [640, 480]
                page.select_option("#kind", "raw")  # re-subscribes
                page.select_option("#max-fps", "1")
                later = int(page.locator("#seq").inner_text())
                expect(page.locator("#seq")).not_to_have_text(str(later))
            finally:
                browser.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    assert errors == []
    assert worker.returncode == 0, out
