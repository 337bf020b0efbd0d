"""Publishers: straight to the group, and the ingest-socket client with reconnects."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.server import serve

from camera import publisher as publisher_module
from camera.live import stream_latest_image, stream_latest_poses
from camera.publisher import (
    LayerPublisher,
    NullPublisher,
    PublishedFrame,
    PublishError,
    SocketPublisher,
    backoff_delays,
)
from tests.camera.conftest import jpeg, next_message, open_viewer, poses_payload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


def frame(seq: int, kinds=("raw",)) -> PublishedFrame:
    return PublishedFrame(
        seq=seq,
        captured_at=2.5,
        jpeg={kind: jpeg(seq) for kind in kinds},
        poses=poses_payload(seq, 2.5),
    )


async def test_layer_publisher_reaches_viewers_and_records(stream, token):
    viewer = await open_viewer("cam", token=token, kinds=["annotated"], poses=True)
    layer = LayerPublisher("cam")
    await layer.start()

    assert await layer.publish(frame(1, kinds=("raw", "annotated")))

    _, poses = await next_message(viewer)
    assert poses["type"] == "poses" and poses["payload"]["seq"] == 1
    _, header = await next_message(viewer)
    assert header["payload"]["kind"] == "annotated"  # raw is not subscribed
    assert await next_message(viewer) == ("bytes", jpeg(1))
    await layer.close()
    latest = await sync_to_async(stream_latest_image)(slug="cam", kind="raw")
    assert latest == (1, 2.5, jpeg(1))
    assert (await sync_to_async(stream_latest_poses)(slug="cam"))["seq"] == 1
    await viewer.disconnect()


async def test_layer_publisher_drops_frames_while_publishing_fails(monkeypatch):
    said = []
    layer = LayerPublisher("cam", warn=said.append)
    calls = {"n": 0}

    async def flaky(group, event):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionError("Redis is away")

    monkeypatch.setattr(publisher_module, "publish_event", flaky)
    monkeypatch.setattr(
        layer.recorder, "flush", lambda: (_ for _ in ()).throw(OSError("no cache"))
    )
    assert not await layer.publish(frame(1))
    assert not await layer.publish(frame(2))
    assert await layer.publish(PublishedFrame(3, 1.0, {}, None))
    assert said[0].startswith("publishing failed (Redis is away)")
    assert said[1] == "publishing works again" and len(said) == 2
    await layer.close()
    assert said[-1] == "could not record the last frame (no cache)"


async def test_null_publisher():
    null = NullPublisher()
    await null.start()
    assert await null.publish(frame(1)) and null.failure is None
    await null.close()


def test_backoff_grows_to_a_cap_with_jitter():
    delays = backoff_delays(0.5, 4.0)
    values = [next(delays) for _ in range(8)]
    assert 0.375 <= values[0] <= 0.625
    assert 0.75 <= values[1] <= 1.25
    assert all(3.0 <= v <= 5.0 for v in values[3:])


class FakeIngest:
    """A stand-in ingest endpoint: greets, answers with a script, records frames."""

    def __init__(self, script):
        self.script = script  # async callable(ws, connection number)
        self.connections = 0
        self.received: list = []
        self.headers: list = []

    async def handler(self, ws):
        self.connections += 1
        self.headers.append(ws.request.headers.get("Authorization"))
        await self.script(self, ws, self.connections)

    async def serve(self):
        server = await serve(self.handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        return server, f"ws://127.0.0.1:{port}/ws/streams/cam/publish/"


async def ready(ws):
    await ws.send(json.dumps({"type": "publish.ready", "payload": {}}))


@pytest.fixture
def quick_backoff(monkeypatch):
    monkeypatch.setattr(publisher_module, "BACKOFF_FIRST_S", 0.01)

    def fast(first=0.01, cap=0.05):
        while True:
            yield first

    monkeypatch.setattr(publisher_module, "backoff_delays", fast)


async def test_socket_publisher_sends_frames_answers_pings_and_reconnects(
    quick_backoff,
):
    async def script(fake, ws, n):
        await ready(ws)
        await ws.send(json.dumps({"type": "ping", "payload": {"nonce": f"n{n}"}}))
        await ws.send(b"\x00")  # binary from the server is ignored
        if n == 1:
            while True:  # until the heartbeat is answered, then an error and a drop
                message = await ws.recv()
                fake.received.append((n, message))
                if isinstance(message, str) and json.loads(message)["type"] == "pong":
                    break
            await ws.send(json.dumps({"type": "error", "payload": {"message": "bad"}}))
            await asyncio.sleep(0.05)
            await ws.close(4012)
            return
        async for message in ws:
            fake.received.append((n, message))

    fake = FakeIngest(script)

    def texts_on(connection: int) -> list[dict]:
        return [
            json.loads(m)
            for n, m in fake.received
            if n == connection and isinstance(m, str)
        ]

    def frames_on(connection: int) -> list[dict]:
        return [t for t in texts_on(connection) if t["type"] == "frame"]

    server, url = await fake.serve()
    said = []
    client = SocketPublisher(url, "tok", say=said.append)
    await client.start()
    assert fake.headers == ["Bearer tok"]
    for seq in range(1, 200):
        await client.publish(frame(seq))
        if frames_on(2):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail(f"no reconnect: {said}")
    assert {"type": "pong", "payload": {"nonce": "n1"}} in texts_on(1)
    header = frames_on(2)[0]["payload"]
    assert set(header) == {"seq", "kind", "captured_at", "bytes"}
    assert "server error: bad" in said
    assert "lost the server (close 4012); reconnecting" in said
    assert "reconnected to the server" in said
    assert client.failure is None
    await client.close()
    assert not await client.publish(frame(999))  # closed: dropped
    server.close()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (4001, "refused the publish token"),
        (4004, "no such stream"),
        (4009, "another worker now publishes this stream"),
    ],
)
async def test_socket_publisher_refusals_are_fatal(code, message):
    async def script(fake, ws, n):
        await ws.close(code)

    server, url = await FakeIngest(script).serve()
    client = SocketPublisher(url, "tok")
    with pytest.raises(PublishError, match=message):
        await client.start()
    assert client.failure.endswith(f"(close {code})")
    await client.close()
    server.close()


async def test_socket_publisher_fatal_close_while_running(quick_backoff):
    async def script(fake, ws, n):
        await ready(ws)
        await ws.recv()
        await ws.close(4001 if n == 1 else 1000)

    server, url = await FakeIngest(script).serve()
    client = SocketPublisher(url, "tok")
    await client.start()
    await client.publish(frame(1))
    for _ in range(100):
        if client.failure:
            break
        await asyncio.sleep(0.01)
    assert client.failure == "the server refused the publish token (close 4001)"
    assert not await client.publish(frame(2))
    await client.close()
    server.close()


async def test_socket_publisher_reconnect_refused_stops(quick_backoff):
    async def script(fake, ws, n):
        if n == 1:
            await ready(ws)
            await ws.close(1011)
        else:
            await ws.close(4004)

    server, url = await FakeIngest(script).serve()
    client = SocketPublisher(url, "tok", say=lambda line: None)
    await client.start()
    for _ in range(100):
        if client.failure:
            break
        await asyncio.sleep(0.01)
    assert client.failure == "the server has no such stream (close 4004)"
    await client.close()
    server.close()


async def test_socket_publisher_unreachable_or_wrong_endpoint(quick_backoff):
    client = SocketPublisher("ws://127.0.0.1:9/x/", "tok", connect_timeout=0.05)
    with pytest.raises(PublishError, match="could not connect to ws://127.0.0.1:9/x/"):
        await client.start()
    with pytest.raises(PublishError, match="--server"):
        await SocketPublisher("nonsense", "tok").start()

    async def script(fake, ws, n):
        await ws.send(json.dumps({"type": "echo.ready", "payload": {}}))
        await asyncio.sleep(1)

    server, url = await FakeIngest(script).serve()
    with pytest.raises(PublishError, match="not a stream's ingest socket"):
        await SocketPublisher(url, "tok").start()
    server.close()


async def test_socket_publisher_keeps_trying_while_the_server_is_away(
    quick_backoff, caplog
):
    attempts = {"n": 0}

    async def script(fake, ws, n):
        attempts["n"] = n
        if n == 1:
            await ready(ws)
            await ws.close(1001)
        elif n < 4:
            await ws.close(1013)  # not ready yet: keep trying
        else:
            await ready(ws)
            await asyncio.sleep(5)

    server, url = await FakeIngest(script).serve()
    with caplog.at_level(logging.INFO, logger="camera.publisher"):
        client = SocketPublisher(url, "tok")
        await client.start()
        for _ in range(300):
            if client.ws is not None and attempts["n"] >= 4:
                break
            await asyncio.sleep(0.01)
    assert attempts["n"] >= 4 and client.ws is not None
    assert "reconnected to the server" in caplog.text
    await client.close()
    server.close()


async def test_socket_publisher_send_failure_reconnects(quick_backoff):
    from websockets.exceptions import ConnectionClosed

    async def script(fake, ws, n):
        await ready(ws)
        if n == 1:
            await asyncio.sleep(0.2)
            await ws.close(1011)  # the reader notices after publish() did
        else:
            await asyncio.sleep(5)

    fake = FakeIngest(script)
    server, url = await fake.serve()
    client = SocketPublisher(url, "tok", say=lambda line: None)
    await client.start()

    async def broken(message):
        raise ConnectionClosed(None, None)

    client.ws.send = broken
    assert not await client.publish(frame(1))
    for _ in range(100):
        if fake.connections == 2 and client.ws is not None:
            break
        await asyncio.sleep(0.01)
    assert fake.connections == 2 and client.ws is not None
    await asyncio.sleep(0.3)  # the old connection's close changes nothing now
    assert client.ws is not None and client.failure is None
    await client.close()
    server.close()


async def test_socket_publisher_gives_up_on_a_server_that_keeps_closing(
    quick_backoff,
):
    async def script(fake, ws, n):
        await ws.close(1013)

    server, url = await FakeIngest(script).serve()
    client = SocketPublisher(url, "tok", connect_timeout=0.1)
    with pytest.raises(PublishError, match=r"could not connect .*\(closed 1013\)"):
        await client.start()
    server.close()


async def test_socket_publisher_keeps_poses_within_the_servers_text_limit():
    async def script(fake, ws, n):
        await ws.send(
            json.dumps({"type": "publish.ready", "payload": {"max_text_bytes": 600}})
        )
        async for message in ws:
            fake.received.append(message)

    fake = FakeIngest(script)
    server, url = await fake.serve()
    said = []
    client = SocketPublisher(url, "tok", say=said.append)
    await client.start()
    poses = poses_payload(1)
    transform = {"from": 1, "to": 2, "rvec": [0.1] * 3, "tvec": [0.2] * 3}
    await client.publish(PublishedFrame(1, 1.0, {}, poses))  # fits
    big = {**poses_payload(2), "transforms": [transform] * 10}
    await client.publish(PublishedFrame(2, 1.0, {}, big))  # fits without transforms
    huge = {**poses_payload(3), "markers": poses["markers"] * 5}
    await client.publish(PublishedFrame(3, 1.0, {}, huge))  # not even then
    await client.publish(PublishedFrame(4, 1.0, {}, {**big, "seq": 4}))
    await client.publish(PublishedFrame(5, 1.0, {}, None))  # no poses: none sent
    await client.close()
    server.close()
    sent = [json.loads(m)["payload"] for m in fake.received]
    assert [p["seq"] for p in sent] == [1, 2, 4]
    assert sent[1]["transforms"] == [] and sent[1]["markers"] == poses["markers"]
    assert said == [
        "poses of 1 markers exceed the server's 600 bytes: sending them without "
        "transforms"
    ]
