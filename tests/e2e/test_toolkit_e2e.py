"""The toolkit against real daphne processes and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.client import close_code, frame
from tests.e2e.server import DaphneServer
from tests.services import fresh_postgres_database, redis_url

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with DaphneServer(tmp_path_factory.mktemp("e2e-toolkit")) as srv:
        srv.alice = srv.create_user("alice")
        yield srv


async def test_close_codes_are_visible_on_real_daphne(server):
    async with connect(server.ws_url("/ws/echo/"), open_timeout=5) as ws:
        assert await close_code(ws) == 4008
    async with connect(server.ws_url("/ws/echo/?token=garbage"), open_timeout=5) as ws:
        assert await close_code(ws) == 4001
    async with connect(server.ws_url("/ws/nowhere/"), open_timeout=5) as ws:
        assert await close_code(ws) == 4004


async def test_expired_token_closes_4001(server):
    out = server.python(
        "from datetime import timedelta\n"
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework_simplejwt.tokens import AccessToken\n"
        "t = AccessToken.for_user(get_user_model().objects.get(username='alice'))\n"
        "t.set_exp(lifetime=timedelta(seconds=-5))\nprint(t)\n"
    )
    expired = out.strip().splitlines()[-1]
    async with connect(server.ws_url(f"/ws/echo/?token={expired}")) as ws:
        assert await close_code(ws) == 4001


async def test_bearer_header_echo_and_bad_frames(server):
    headers = {"Authorization": f"Bearer {server.alice['access']}"}
    async with connect(server.ws_url("/ws/echo/"), additional_headers=headers) as ws:
        assert (await frame(ws))["type"] == "echo.ready"
        await ws.send("not json")
        assert (await frame(ws))["payload"]["code"] == "INVALID_JSON"
        await ws.send(json.dumps({"type": "websocket.disconnect", "payload": {}}))
        assert (await frame(ws))["payload"]["code"] == "UNKNOWN_TYPE"
        await ws.send(b"\x00binary")
        assert (await frame(ws))["payload"]["code"] == "INVALID_MESSAGE"
        await ws.send(
            json.dumps({"type": "echo", "payload": {"n": 1}, "request_id": "r"})
        )
        reply = await frame(ws)
        assert reply == {
            **reply,
            "type": "echo",
            "payload": {"n": 1},
            "request_id": "r",
        }


async def test_ticket_flow_and_reuse(server):
    status, body = server.request(
        "POST", "/api/auth/token/", {"username": "alice", "password": "pw-Secret-123"}
    )
    assert status == 200
    status, ticket = server.request(
        "POST", "/api/realtime/tickets/", token=body["access"]
    )
    assert status == 201 and ticket["expires_in"] == 30
    url = server.ws_url(f"/ws/echo/?ticket={ticket['ticket']}")
    async with connect(url) as ws:
        assert (await frame(ws))["type"] == "echo.ready"
    async with connect(url) as ws:  # used already
        assert await close_code(ws) == 4001


async def test_cross_site_origin_is_refused_at_handshake(server):
    url = server.ws_url(f"/ws/echo/?token={server.alice['access']}")
    for origin in ("https://evil.example", "null", "http://localhost.evil.com"):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, origin=origin):
                pass
        assert info.value.response.status_code == 403
    async with connect(url, origin="http://localhost:8000") as ws:
        assert (await frame(ws))["type"] == "echo.ready"


async def test_huge_frame_drops_only_that_connection(server):
    url = server.ws_url(f"/ws/echo/?token={server.alice['access']}")
    async with connect(url) as calm, connect(url, max_size=None) as rude:
        await frame(calm)
        await frame(rude)
        await rude.send("x" * (1024 * 1024 + 10))  # over daphne's 1 MiB hard limit
        assert await close_code(rude) in {1006, 1009}
        await calm.send(json.dumps({"type": "echo", "payload": {"still": True}}))
        assert (await frame(calm))["payload"] == {"still": True}


async def test_oversized_under_daphne_limit_is_an_error_not_a_close(server):
    url = server.ws_url(f"/ws/echo/?token={server.alice['access']}")
    async with connect(url) as ws:
        await frame(ws)
        await ws.send(json.dumps({"type": "echo", "payload": {"b": "x" * 70_000}}))
        assert (await frame(ws))["payload"]["code"] == "MESSAGE_TOO_LARGE"
        await ws.send(json.dumps({"type": "ping", "payload": {}}))
        assert (await frame(ws))["type"] == "pong"


async def test_tokens_never_reach_the_log(server):
    token = server.alice["access"]
    async with connect(server.ws_url(f"/ws/echo/?token={token}")) as ws:
        await frame(ws)
    async with connect(server.ws_url(f"/ws/echo/?token={token}x")) as ws:
        await close_code(ws)
    signature = token.rsplit(".", 1)[-1]
    log = server.log()
    assert "/ws/echo/" in log  # the access log is there ...
    assert signature not in log  # ... without the credential


def test_two_processes_share_presence_and_broadcasts(tmp_path):
    database_url, drop = fresh_postgres_database()
    env = {"REDIS_URL": redis_url(), "CACHE_KEY_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}"}
    try:
        with DaphneServer(tmp_path / "a", env=env, database_url=database_url) as a:
            with DaphneServer(
                tmp_path / "b", env=env, database_url=database_url, migrate=False
            ) as b:
                staff = a.create_user("boss", staff=True)
                user = a.create_user("carol")

                async def scenario():
                    token = user["access"]
                    async with connect(a.ws_url(f"/ws/echo/?token={token}")) as one:
                        async with connect(b.ws_url(f"/ws/echo/?token={token}")) as two:
                            await frame(one)
                            await frame(two)
                            # One process's broadcast reaches the other's socket.
                            for n in range(5):
                                await one.send(
                                    json.dumps(
                                        {"type": "echo.broadcast", "payload": {"n": n}}
                                    )
                                )
                            for ws in (one, two):
                                got = [
                                    (await frame(ws))["payload"]["payload"]["n"]
                                    for _ in range(5)
                                ]
                                assert got == [0, 1, 2, 3, 4]
                            for srv in (a, b):
                                status, stats = srv.request(
                                    "GET", "/api/realtime/stats/", token=staff["access"]
                                )
                                assert status == 200
                                assert stats["total_connections"] == 2
                                assert stats["online_users"] == 1
                                assert stats["by_endpoint"] == {"echo": 2}
                    status, stats = b.request(
                        "GET", "/api/realtime/stats/", token=staff["access"]
                    )
                    assert stats["total_connections"] == 0

                asyncio.run(scenario())
                status, ready = b.request("GET", "/readyz")
                assert status == 200 and ready["checks"]["channel_layer"] == "ok"
    finally:
        drop()


def sqlite_files_open(server) -> int:
    """Descriptors the server process holds on its SQLite files (db, -wal, -shm)."""
    fd_dir = Path(f"/proc/{server.process.pid}/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        count += "e2e.sqlite3" in target
    return count


def test_http_requests_do_not_leave_database_connections_open(server):
    """SQLite keeps one connection for the sockets' database thread (CONN_MAX_AGE is
    None); each HTTP request runs in a thread of its own under ASGI and must close
    its connection when it ends, or every request would leave files open."""
    token = server.alice["access"]

    def requests_then_files(count: int) -> int:
        for _ in range(count):
            assert server.request("GET", "/api/sessions/", token=token)[0] == 200
        # The last request closes its connection just after its response went out;
        # what stays open settles within a moment.
        settled, deadline = sqlite_files_open(server), time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = sqlite_files_open(server)
            if now == settled:
                break
            settled = now
        return settled

    # Leaked connections are only freed by the garbage collector, so they show on a
    # first burst: 30 requests left 4-8 more files open without the fix. One more
    # may open for good meanwhile (a connection that stays, e.g. the sockets'
    # database thread finishing an earlier test's disconnect).
    before = requests_then_files(3)
    assert requests_then_files(30) <= before + 1
