"""Camera test helpers: streams, viewers and publishers on config.asgi.application."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from camera.models import Stream
from tests.conftest import communicator, recv_type, send

JPEG = b"\xff\xd8" + b"\x00" * 200 + b"\xff\xd9"  # all the server checks of a JPEG


def jpeg(seq: int) -> bytes:
    """A distinct (fake) JPEG per frame number."""
    return b"\xff\xd8" + seq.to_bytes(4, "big") + b"\x00" * 100 + b"\xff\xd9"


@pytest.fixture(autouse=True)
def _record_every_frame(settings):
    settings.CAMERA_LIVE_INTERVAL = 0  # the cache sees every frame: no waiting


@pytest.fixture
def stream(db) -> Stream:
    return Stream.objects.create(slug="cam", title="Bench camera")


@pytest.fixture
def public_stream(db) -> Stream:
    return Stream.objects.create(slug="open", public=True, kinds=["raw"])


async def next_message(comm: WebsocketCommunicator, timeout: float = 3):
    """``("text", frame dict)`` or ``("bytes", data)``; pings skipped."""
    while True:
        output = await comm.receive_output(timeout)
        assert output["type"] == "websocket.send", output
        if output.get("text") is not None:
            frame = json.loads(output["text"])
            if frame["type"] != "ping":
                return "text", frame
        else:
            return "bytes", output["bytes"]


async def open_viewer(
    slug: str,
    *,
    token: str | None = None,
    kinds=("raw",),
    poses: bool = False,
    max_fps: float | None = None,
) -> WebsocketCommunicator:
    comm = communicator(f"/ws/streams/{slug}/", token=token)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    info = await recv_type(comm, "stream.info")
    assert info["payload"]["stream_id"] == slug
    payload = {"kinds": list(kinds), "poses": poses}
    if max_fps is not None:
        payload["max_fps"] = max_fps
    await send(comm, "stream.subscribe", payload, request_id="sub")
    reply = await recv_type(comm, "stream.subscribed")
    assert reply["request_id"] == "sub"
    return comm


async def open_publisher(stream: Stream, **kwargs) -> WebsocketCommunicator:
    comm = communicator(
        f"/ws/streams/{stream.slug}/publish/", bearer=stream.publish_token, **kwargs
    )
    connected, _ = await comm.connect(timeout=5)
    assert connected
    ready = await recv_type(comm, "publish.ready")
    assert ready["payload"]["stream_id"] == stream.slug
    return comm


def poses_payload(seq: int, captured_at: float = 1.5) -> dict:
    return {
        "seq": seq,
        "captured_at": captured_at,
        "markers": [
            {
                "id": 7,
                "corners": [[1, 2], [3, 2], [3, 4], [1, 4.5]],
                "rvec": [0.1, 0.2, 0.3],
                "tvec": [0.0, 0.1, 0.5],
                "distance_m": 0.509902,
            }
        ],
        "transforms": [],
    }


async def publish(
    comm: WebsocketCommunicator,
    seq: int,
    *,
    kind: str = "raw",
    data: bytes | None = None,
    poses: bool = True,
) -> None:
    """One frame the way a worker sends it: poses, then header and JPEG."""
    data = jpeg(seq) if data is None else data
    if poses:
        await send(comm, "poses", poses_payload(seq))
    await send(
        comm,
        "frame",
        {"seq": seq, "kind": kind, "captured_at": 1.5, "bytes": len(data)},
    )
    await comm.send_to(bytes_data=data)
