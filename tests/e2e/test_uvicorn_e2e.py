"""The same application under uvicorn, the server docs/performance.md recommends for
fan-out-heavy deployments: close codes, errors, sessions fan-out."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request

import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import close_code, frame
from tests.e2e.server import DaphneServer

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with DaphneServer(tmp_path_factory.mktemp("e2e-uvicorn"), server="uvicorn") as srv:
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
        with urllib.request.urlopen(server.url("/metrics"), timeout=10) as reply:
            text = reply.read().decode()
        pattern = rf'^realtime_broadcast_writes_total{{path="{path}"}} (\d+)$'
        found = re.search(pattern, text, re.M)
        return int(found.group(1)) if found else 0

    before = {path: writes(path) for path in ("prepared", "asgi")}
    url = server.ws_url(f"/ws/echo/?token={server.alice['access']}")
    plain = [await connect(url, compression=None) for _ in range(2)]
    deflated = await connect(url)  # websockets offers permessage-deflate by default
    sockets = [*plain, deflated]
    try:
        for ws in sockets:
            assert (await frame(ws))["type"] == "echo.ready"
        sizes = [10, 300, 65_400]  # the last broadcast frame is over 65,535 bytes
        sent = [{"i": i, "text": "안녕" + "x" * size} for i, size in enumerate(sizes)]
        for payload in sent:
            await plain[0].send(
                json.dumps({"type": "echo.broadcast", "payload": payload})
            )
        for ws in sockets:
            got = [await frame(ws) for _ in sent]
            assert [f["type"] for f in got] == ["echo.broadcasted"] * len(sent)
            assert [f["payload"]["payload"] for f in got] == sent
        assert len(json.dumps(got[-1], ensure_ascii=False).encode()) > 65_535
        # Each plain socket took the prepared path, the deflated one ASGI's.
        assert writes("prepared") - before["prepared"] == 2 * len(sent)
        assert writes("asgi") - before["asgi"] == len(sent)
    finally:
        for ws in sockets:
            await ws.close()
