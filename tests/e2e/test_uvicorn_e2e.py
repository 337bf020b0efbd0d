"""The same application under uvicorn, the server docs/performance.md recommends for
fan-out-heavy deployments: close codes, errors, sessions fan-out."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.client import close_code, frame
from tests.e2e.server import DaphneServer

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Frames of 1 MB, so that bursts outgrow the kernel's socket buffers (up to 4 MB
    # on this machine) quickly; a client may fall 8 MiB behind.
    env = {
        "REALTIME_MAX_TEXT_BYTES": str(1_100_000),
        "REALTIME_MAX_QUEUED_BYTES": str(8 * 1024 * 1024),
    }
    with DaphneServer(
        tmp_path_factory.mktemp("e2e-uvicorn"), server="uvicorn", env=env
    ) as srv:
        srv.alice = srv.create_user("alice")
        yield srv


async def test_close_codes_and_errors_under_uvicorn(server):
    async with connect(server.ws_url("/ws/echo/")) as ws:
        assert await close_code(ws) == 4008
    async with connect(server.ws_url("/ws/echo/?token=garbage")) as ws:
        assert await close_code(ws) == 4001
    url = server.ws_url(f"/ws/echo/?token={server.alice['access']}")
    async with connect(url) as ws:
        assert (await frame(ws))["type"] == "echo.ready"
        await ws.send("not json")
        assert (await frame(ws))["payload"]["code"] == "INVALID_JSON"
        await ws.send(json.dumps({"type": "ping", "payload": {"n": 1}}))
        assert (await frame(ws))["payload"] == {"n": 1}


async def test_session_fanout_under_uvicorn(server):
    status, session = server.request(
        "POST", "/api/sessions/", {"title": "uv"}, token=server.alice["access"]
    )
    assert status == 201
    code = session["code"]
    tokens = []
    for name in ("g1", "g2", "g3"):
        status, joined = server.request(
            "POST", f"/api/sessions/{code}/join/", {"nickname": name}
        )
        assert status == 201
        tokens.append(joined["token"])
    sockets = [
        await connect(server.ws_url(f"/ws/sessions/{code}/?token={t}")) for t in tokens
    ]
    try:
        for ws in sockets:
            assert (await frame(ws))["type"] == "session.welcome"
        for i, ws in enumerate(sockets):
            await ws.send(
                json.dumps({"type": "chat.send", "payload": {"content": f"m{i}"}})
            )
        for ws in sockets:
            seqs = []
            while len(seqs) < 3:
                got = await frame(ws)
                if got["type"] == "chat.message":
                    seqs.append(got["payload"]["seq"])
            assert seqs == [1, 2, 3]
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_prepared_frames_reach_plain_and_compressed_sockets_alike(server):
    """Sockets without compression get broadcasts framed once per process
    (realtime/direct.py); a socket that negotiated permessage-deflate (as browsers
    do) gets them through ASGI. Both see the same frames, in order, at every length
    encoding (7-bit, 16-bit, 64-bit), multi-byte text included."""

    def writes(path: str) -> int:
        return metric(server, "realtime_broadcast_writes_total", f'path="{path}"')

    before = {path: writes(path) for path in ("prepared", "asgi")}
    url = server.ws_url(f"/ws/echo/?token={server.alice['access']}")
    plain = [await connect(url, compression=None) for _ in range(2)]
    deflated = await connect(url)  # websockets offers permessage-deflate by default
    sockets = [*plain, deflated]
    try:
        sent = await broadcast_every_length(plain[0], sockets)
        # Each plain socket took the prepared path, the deflated one ASGI's.
        assert writes("prepared") - before["prepared"] == 2 * len(sent)
        assert writes("asgi") - before["asgi"] == len(sent)
    finally:
        for ws in sockets:
            await ws.close()


async def broadcast_every_length(sender, sockets) -> list[dict]:
    """Once each socket is ready, three broadcasts from ``sender``, one per length
    encoding (7-bit, 16-bit, 64-bit), multi-byte text included; every socket must get
    them all, in order. Returns what was sent."""
    for ws in sockets:
        assert (await frame(ws))["type"] == "echo.ready"
    sizes = [10, 300, 65_400]  # the last broadcast frame is over 65,535 bytes
    sent = [{"i": i, "text": "안녕" + "x" * size} for i, size in enumerate(sizes)]
    for payload in sent:
        await sender.send(json.dumps({"type": "echo.broadcast", "payload": payload}))
    for ws in sockets:
        got = [await frame(ws) for _ in sent]
        assert [f["type"] for f in got] == ["echo.broadcasted"] * len(sent)
        assert [f["payload"]["payload"] for f in got] == sent
    assert len(json.dumps(got[-1], ensure_ascii=False).encode()) > 65_535
    return sent


def metric(server, name: str, label: str) -> int:
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as reply:
        text = reply.read().decode()
    found = re.search(rf"^{name}{{{label}}} (\d+)(?:\.0)?$", text, re.M)
    return int(found.group(1)) if found else 0


async def broadcast_burst(server, count: int, *, stuck_rcvbuf: int = 4096):
    """A socket that does not read (tiny receive buffer), a reader, and three senders
    each sending 10 broadcasts of 1 MB a second, taking turns: ``(stuck, reader,
    got)``. A sender sends once the reader has the previous broadcast: frames from
    different sockets have no order of their own (the server may read a later one
    first), so the test fixes one."""
    url = server.ws_url(f"/ws/echo/?token={server.alice['access']}")
    stuck_sock = socket.socket()
    stuck_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, stuck_rcvbuf)
    stuck_sock.connect(("127.0.0.1", server.port))
    stuck = await connect(url, sock=stuck_sock, max_queue=1, compression=None)
    reader = await connect(url, compression=None, max_queue=None)
    senders = [await connect(url, compression=None, max_queue=None) for _ in range(3)]
    for ws in [stuck, reader, *senders]:
        assert (await frame(ws))["type"] == "echo.ready"
    drains = [asyncio.create_task(drain(ws)) for ws in senders]
    blob = "x" * 1_000_000
    got = []
    for i in range(count):
        await senders[i % 3].send(
            json.dumps({"type": "echo.broadcast", "payload": {"i": i, "b": blob}})
        )
        got.append((await frame(reader, timeout=20))["payload"]["payload"]["i"])
        await asyncio.sleep(0.11 if i % 3 == 2 else 0)  # 10/s per socket
    for task in drains:
        task.cancel()
    for ws in senders:
        await ws.close()
    return stuck, reader, got


async def test_a_client_that_falls_behind_gets_everything_later_in_order(server):
    """uvicorn's send waits while a client is behind; the hub delivers to one socket
    after another, so that client's broadcasts are queued instead of waited for."""
    queued = metric(server, "realtime_broadcast_writes_total", 'path="queued"')
    closes = metric(server, "realtime_closes_total", 'code="4012"')
    # 6 MB: past the socket buffers (at most ~4.2 MB), and the rest under the bound.
    count = 6
    slow, reader, got = await broadcast_burst(server, count)
    try:
        assert got == list(range(count))  # the reader was never held up
        assert metric(server, "realtime_broadcast_writes_total", 'path="queued"') > (
            queued
        )
        late = [
            (await frame(slow, timeout=20))["payload"]["payload"]["i"]
            for _ in range(count)
        ]
        assert late == list(range(count))
        assert metric(server, "realtime_closes_total", 'code="4012"') == closes
    finally:
        await slow.close()
        await reader.close()


async def test_a_client_that_stops_reading_is_closed_and_cut_off(server):
    """Past REALTIME_MAX_QUEUED_BYTES (8 MiB here) the queue is dropped and the
    socket closed 4012; a client that takes not even the close frame is cut off."""
    closes = metric(server, "realtime_closes_total", 'code="4012"')
    stuck, reader, got = await broadcast_burst(server, 20)  # 20 MB
    try:
        assert got == list(range(20))
        assert metric(server, "realtime_closes_total", 'code="4012"') == closes + 1
        # Reading again, it finds what fitted in the buffers, then the end: the close
        # frame if it came through in time, else the cut connection (1006).
        frames = 0
        async with asyncio.timeout(20):
            try:
                async for _ in stuck:
                    frames += 1
            except ConnectionClosed:
                pass
        assert frames < 20 and stuck.close_code in (4012, 1006)
    finally:
        await stuck.close()
        await reader.close()


async def drain(ws) -> None:
    async for _ in ws:
        pass
