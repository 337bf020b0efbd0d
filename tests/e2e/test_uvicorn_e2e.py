"""The same application under uvicorn, the server docs/performance.md recommends for
fan-out-heavy deployments: close codes, errors, sessions fan-out."""

from __future__ import annotations

import asyncio
import json

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
