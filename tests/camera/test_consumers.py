"""Viewer and ingest sockets through config.asgi.application (WebsocketCommunicator)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from camera.consumers import ViewerConsumer
from camera.flow import ViewerFlow
from camera.live import stream_latest_image, stream_latest_poses, stream_live_status
from realtime.auth import MISSING
from realtime.tokens import scoped_token_issue
from tests.camera.conftest import (
    JPEG,
    jpeg,
    next_message,
    open_publisher,
    open_viewer,
    poses_payload,
    publish,
)
from tests.conftest import closed_with, communicator, recv_type, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def frames_of(comm, count: int, *, ack: bool = False) -> list[tuple[dict, bytes]]:
    """The next ``count`` (header, JPEG) pairs, poses skipped; acked if asked."""
    got = []
    while len(got) < count:
        kind, message = await next_message(comm)
        if kind == "text" and message["type"] == "poses":
            continue
        assert kind == "text" and message["type"] == "frame", message
        kind, data = await next_message(comm)
        assert kind == "bytes", "a frame header is followed by its JPEG"
        assert len(data) == message["payload"]["bytes"]
        got.append((message["payload"], data))
        if ack:
            await send(comm, "frame.ack", {"seq": message["payload"]["seq"]})
    return got


async def fanned_out(publisher) -> None:
    """Everything sent before has been handled (the ingest socket answers in order)."""
    await send(publisher, "ping", {"flush": True})
    await recv_type(publisher, "pong")


# ---------------------------------------------------------------- connecting
async def test_viewer_gets_stream_info(stream, token):
    comm = communicator("/ws/streams/cam/", token=token)
    await comm.connect()
    info = await recv_type(comm, "stream.info")
    assert info["payload"] == {
        "stream_id": "cam",
        "title": "Bench camera",
        "width": 640,
        "height": 480,
        "fps": 30.0,
        "kinds": ["raw", "annotated"],
        "dictionary": "DICT_4X4_50",
        "marker_length_m": 0.05,
        "camera_matrix": {
            "fx": 576.0,
            "fy": 576.0,
            "cx": 320.0,
            "cy": 240.0,
            "dist": [0.0] * 5,
        },
        "calibrated": False,
    }
    await comm.disconnect()


async def test_who_may_watch(stream, public_stream, token, user):
    async def close_code(path: str, token: str | None = None) -> int:
        comm = communicator(path, token=token)
        await comm.connect()
        code = await closed_with(comm)
        await comm.disconnect()
        return code

    assert await close_code("/ws/streams/nope/", token) == 4004
    assert await close_code("/ws/streams/bad.id!/", token) == 4004
    assert await close_code("/ws/streams/cam/") == 4008  # not public, no credential
    assert await close_code("/ws/streams/open/?token=garbage") == 4001
    guest = scoped_token_issue({"session": "ABC", "participant_id": 1}, ttl=60)
    assert await close_code("/ws/streams/cam/", guest) == 4005  # not a user
    public = await open_viewer("open")  # public: no credential needed
    await public.disconnect()


async def test_subscribe_validates_kinds(stream, token):
    comm = communicator("/ws/streams/cam/", token=token)
    await comm.connect()
    await recv_type(comm, "stream.info")
    await send(comm, "stream.subscribe", {"kinds": ["depth"]}, request_id="s1")
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert "depth" in error["payload"]["message"] and error["request_id"] == "s1"
    await send(comm, "stream.subscribe", {"kinds": ["raw"], "max_fps": 0})
    assert (await recv_type(comm, "error"))["payload"]["message"].startswith(
        "payload.max_fps"
    )
    await send(comm, "stream.subscribe", {"kinds": ["raw", "raw"], "poses": True})
    reply = await recv_type(comm, "stream.subscribed")
    assert reply["payload"] == {"kinds": ["raw"], "poses": True, "max_fps": None}
    await comm.disconnect()


# ---------------------------------------------------------------- ingest
async def test_publish_token_is_required_and_checked(stream):
    async def close_code(**kwargs) -> int:
        comm = communicator("/ws/streams/cam/publish/", **kwargs)
        await comm.connect()
        code = await closed_with(comm)
        await comm.disconnect()
        return code

    assert await close_code() == 4008
    assert await close_code(bearer="wrong") == 4001
    assert await close_code(token=stream.publish_token + "x") == 4001
    unknown = communicator("/ws/streams/gone/publish/", bearer=stream.publish_token)
    await unknown.connect()
    assert await closed_with(unknown) == 4004
    by_query = communicator("/ws/streams/cam/publish/", token=stream.publish_token)
    await by_query.connect()
    assert (await recv_type(by_query, "publish.ready"))["payload"] == {
        "stream_id": "cam",
        "kinds": ["raw", "annotated"],
        "max_frame_bytes": 1_000_000,
        "max_text_bytes": 65536,
    }
    await by_query.disconnect()


async def test_frames_and_poses_reach_viewers(stream, token):
    viewer = await open_viewer("cam", token=token, kinds=["raw"], poses=True)
    publisher = await open_publisher(stream)

    await publish(publisher, 1)

    kind, poses = await next_message(viewer)
    assert poses["type"] == "poses" and poses["payload"] == poses_payload(1)
    kind, header = await next_message(viewer)
    assert header["type"] == "frame"
    assert header["payload"] == {
        "seq": 1,
        "kind": "raw",
        "captured_at": 1.5,
        "bytes": len(jpeg(1)),
    }
    assert header["timestamp"].endswith("Z")
    assert await next_message(viewer) == ("bytes", jpeg(1))

    # The server keeps the latest of each for REST.
    assert await sync_to_async(stream_latest_image)(slug="cam", kind="raw") == (
        1,
        1.5,
        jpeg(1),
    )
    assert (await sync_to_async(stream_latest_poses)(slug="cam"))["seq"] == 1
    status = await sync_to_async(stream_live_status)(slug="cam")
    assert status["live"] and status["seq"] == 1 and status["viewers"] == 1
    await viewer.disconnect()
    await publisher.disconnect()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"GIF89a" + JPEG, "FF D8"),
        (JPEG[:-2], "FF D9"),
        (JPEG[:100], "FF D9"),
        (JPEG + b"\xff\xd9", None),  # complete, but not the size announced
    ],
)
async def test_bad_jpegs_are_rejected_not_fanned_out(stream, token, data, fragment):
    viewer = await open_viewer("cam", token=token)
    publisher = await open_publisher(stream)

    announced = len(JPEG) if fragment is None else len(data) or 204
    fragment = fragment or f"has {len(data)} bytes, its header announced {announced}"
    await send(
        publisher,
        "frame",
        {"seq": 1, "kind": "raw", "captured_at": 1.0, "bytes": announced},
    )
    await publisher.send_input({"type": "websocket.receive", "bytes": data})
    error = await recv_type(publisher, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert fragment in error["payload"]["message"]
    assert "not published" in error["payload"]["message"]
    assert await viewer.receive_nothing(0.2)

    await publish(publisher, 2, poses=False)  # the socket is fine
    assert (await frames_of(viewer, 1))[0][0]["seq"] == 2
    await viewer.disconnect()
    await publisher.disconnect()


async def test_ingest_protocol_errors(stream, settings):
    settings.CAMERA_MAX_FRAME_BYTES = 1000
    publisher = await open_publisher(stream)

    async def error_message() -> str:
        frame = await recv_type(publisher, "error")
        assert frame["payload"]["code"] == "INVALID_MESSAGE"
        return frame["payload"]["message"]

    await publisher.send_to(bytes_data=JPEG)
    assert "must follow its `frame` header" in await error_message()
    header = {"seq": 1, "kind": "raw", "captured_at": 1.0, "bytes": len(JPEG)}
    await send(publisher, "frame", header)
    await send(publisher, "frame", {**header, "seq": 2})
    assert "seq=1 kind=raw was not followed by its JPEG" in await error_message()
    await publisher.send_to(bytes_data=JPEG)  # seq 2's JPEG: accepted
    await send(publisher, "frame", {**header, "kind": "depth"})
    assert "'depth' is not a kind of this stream" in await error_message()
    await send(publisher, "frame", {**header, "bytes": 5000})
    assert "at most 1000 bytes" in await error_message()
    await send(publisher, "frame", {**header, "bytes": "12"})
    assert (await error_message()).startswith("payload.bytes")
    bad_poses = poses_payload(1)
    bad_poses["markers"][0]["corners"] = [[1, 2]]
    await send(publisher, "poses", bad_poses)
    assert (await error_message()).startswith("payload.markers.0.corners")
    assert await publisher.receive_nothing(0.1)
    await publisher.disconnect()


async def test_a_new_publisher_replaces_the_old_one(stream):
    first = await open_publisher(stream)
    second = await open_publisher(stream)
    assert await closed_with(first) == 4009
    await second.send_to(text_data='{"type": "ping", "payload": {}}')
    assert (await recv_type(second, "pong"))["type"] == "pong"
    await first.disconnect()
    await second.disconnect()


# ---------------------------------------------------------------- flow control
async def test_a_viewer_that_never_acks_gets_two_frames_others_keep_their_rate(
    stream, token
):
    stalled = await open_viewer("cam", token=token, kinds=["raw"], poses=True)
    acking = await open_viewer("cam", token=token, kinds=["raw"], poses=True)
    publisher = await open_publisher(stream)

    for seq in range(1, 21):
        await publish(publisher, seq)
        ((header, data),) = await frames_of(acking, 1, ack=True)
        assert header["seq"] == seq and data == jpeg(seq)  # every single frame

    received = []
    while not await stalled.receive_nothing(0.2):
        received.append(await next_message(stalled))
    frames = [m for kind, m in received if kind == "text" and m["type"] == "frame"]
    poses = [m for kind, m in received if kind == "text" and m["type"] == "poses"]
    assert [f["payload"]["seq"] for f in frames] == [1, 2]  # STREAM_MAX_IN_FLIGHT
    assert [p["payload"]["seq"] for p in poses] == list(range(1, 21))  # never held

    # Acknowledging frees a slot: the newest frame comes, not the oldest missed.
    await send(stalled, "frame.ack", {"seq": 2})
    ((header, data),) = await frames_of(stalled, 1)
    assert header["seq"] == 20 and data == jpeg(20)
    for comm in (stalled, acking, publisher):
        await comm.disconnect()


async def test_max_in_flight_comes_from_settings(stream, token, settings):
    settings.STREAM_MAX_IN_FLIGHT = 4
    viewer = await open_viewer("cam", token=token)
    publisher = await open_publisher(stream)
    for seq in range(1, 8):
        await publish(publisher, seq, poses=False)
    await fanned_out(publisher)
    assert [h["seq"] for h, _ in await frames_of(viewer, 4)] == [1, 2, 3, 4]
    assert await viewer.receive_nothing(0.2)
    await viewer.disconnect()
    await publisher.disconnect()


async def test_both_kinds_and_per_kind_acks(stream, token):
    viewer = await open_viewer("cam", token=token, kinds=["raw", "annotated"])
    publisher = await open_publisher(stream)
    await publish(publisher, 1, kind="raw", poses=False)
    await publish(publisher, 1, kind="annotated", poses=False)
    await publish(publisher, 2, kind="raw", poses=False)
    await fanned_out(publisher)
    got = await frames_of(viewer, 2)
    assert [(h["seq"], h["kind"]) for h, _ in got] == [(1, "raw"), (1, "annotated")]
    await send(viewer, "frame.ack", {"seq": 1, "kind": "annotated"})
    ((header, _),) = await frames_of(viewer, 1)
    assert (header["seq"], header["kind"]) == (2, "raw")
    await viewer.disconnect()
    await publisher.disconnect()


async def test_max_fps_thins_out_frames(stream, token):
    viewer = await open_viewer("cam", token=token, poses=True, max_fps=1)
    publisher = await open_publisher(stream)
    for seq in range(1, 11):  # all within a fraction of a second
        await publish(publisher, seq)
    await fanned_out(publisher)
    assert [h["seq"] for h, _ in await frames_of(viewer, 1, ack=True)] == [1]
    assert await viewer.receive_nothing(0.2)  # neither frames nor poses
    await viewer.disconnect()
    await publisher.disconnect()


async def test_a_silent_viewer_with_frames_owed_is_closed_4003(stream, token, settings):
    settings.STREAM_ACK_TIMEOUT = 0.3
    idle = await open_viewer("cam", token=token, kinds=[])  # owed nothing: stays
    publisher = await open_publisher(stream)
    silent = await open_viewer("cam", token=token)
    acking = await open_viewer("cam", token=token)
    await publish(publisher, 1, poses=False)
    await frames_of(silent, 1)
    await frames_of(acking, 1, ack=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for seq in range(2, 6):  # the acking viewer stays well past the timeout
        await asyncio.sleep(0.1)
        await publish(publisher, seq, poses=False)
        await frames_of(acking, 1, ack=True)
    assert await closed_with(silent) == 4003
    assert loop.time() - started < 1.0
    await idle.send_to(text_data='{"type": "ping", "payload": {}}')
    assert (await recv_type(idle, "pong"))["type"] == "pong"
    for comm in (idle, publisher, silent, acking):
        await comm.disconnect()


async def test_viewers_leaving_mid_stream_do_not_disturb_the_others(stream, token):
    viewers = [await open_viewer("cam", token=token) for _ in range(4)]
    publisher = await open_publisher(stream)
    await publish(publisher, 1, poses=False)
    kind, header = await next_message(viewers[0])
    assert header["type"] == "frame"
    await viewers[0].disconnect()  # read the header, gone before its JPEG
    await viewers[1].disconnect()  # gone before anything
    for seq in range(2, 6):
        await publish(publisher, seq, poses=False)
    await fanned_out(publisher)
    for viewer in viewers[2:]:  # two in flight, then the newest once acked
        got = await frames_of(viewer, 3, ack=True)
        assert [h["seq"] for h, _ in got] == [1, 2, 5]
    status = await sync_to_async(stream_live_status)(slug="cam")
    assert status["viewers"] == 2
    for comm in (*viewers[2:], publisher):
        await comm.disconnect()


async def test_a_viewer_closed_for_another_reason_is_not_timed_out(
    stream, token, settings
):
    settings.STREAM_ACK_TIMEOUT = 0.2
    settings.REALTIME_MAX_VIOLATIONS = 1
    viewer = await open_viewer("cam", token=token)
    publisher = await open_publisher(stream)
    await publish(publisher, 1, poses=False)
    await frames_of(viewer, 1)  # owed: the ack timer runs
    for _ in range(2):
        await viewer.send_to(text_data="not json")
    assert await closed_with(viewer) == 4029
    await asyncio.sleep(0.3)  # the timer fires on a closing socket: nothing more
    assert await viewer.receive_nothing(0.1)
    await viewer.disconnect()
    await publisher.disconnect()


async def test_a_header_and_its_jpeg_are_never_split_by_another_frame():
    """A send that waits (uvicorn, a client behind) must not let a second frame,
    released meanwhile by an ack, slip its header in before the first one's JPEG."""
    viewer = ViewerConsumer()
    viewer.scope = {"type": "websocket", "auth": MISSING, "path": "/ws/streams/x/"}
    viewer.channel_name = "v"
    sent: list[object] = []
    writable = asyncio.Event()  # uvicorn's: cleared while the buffer is full

    async def send(message: dict) -> None:
        await writable.wait()
        sent.append(message.get("text") or message.get("bytes"))
        if len(sent) == 1:  # the first header fills the buffer again
            writable.clear()
            asyncio.get_running_loop().call_soon(writable.set)

    viewer.base_send = send
    viewer._init_state()
    viewer._frame_pair = asyncio.Lock()
    viewer.flow = ViewerFlow(max_in_flight=2, ack_timeout=10)
    viewer.ack_timer = None
    one = {"header": "h1", "jpeg": b"j1"}
    two = {"header": "h2", "jpeg": b"j2"}
    first = asyncio.ensure_future(viewer._send_frame(one))
    second = asyncio.ensure_future(viewer._send_frame(two))
    await asyncio.sleep(0)
    writable.set()  # both sends were waiting: both wake
    await asyncio.wait_for(asyncio.gather(first, second), 2)
    assert sent == ["h1", b"j1", "h2", b"j2"]
    if viewer.ack_timer is not None:
        viewer.ack_timer.cancel()
