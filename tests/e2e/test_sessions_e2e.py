"""Live sessions against real daphne processes and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.server import DaphneServer
from tests.services import fresh_postgres_database, redis_url

pytestmark = pytest.mark.timeout(120)


class Peer:
    """One WebSocket client of a session room, answering heartbeats as browsers do."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[dict | None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                frame = json.loads(text)
                if frame["type"] == "ping":  # keeps our presence refreshed
                    await self.send("pong", {"nonce": frame["payload"]["nonce"]})
                else:
                    self.frames.put_nowait(frame)
        except ConnectionClosed:
            pass
        finally:
            self.frames.put_nowait(None)

    async def send(self, type_: str, payload: dict | None = None, **extra) -> None:
        await self.ws.send(
            json.dumps({"type": type_, "payload": payload or {}, **extra})
        )

    async def until(self, done, timeout: float = 5) -> list[dict]:
        frames: list[dict] = []
        async with asyncio.timeout(timeout):
            while not done(frames):
                frame = await self.frames.get()
                assert frame is not None, f"closed {self.ws.close_code} after {frames}"
                frames.append(frame)
        return frames

    async def of_type(self, type_: str, count: int, timeout: float = 5) -> list[dict]:
        frames = await self.until(
            lambda got: sum(f["type"] == type_ for f in got) >= count, timeout
        )
        return [f["payload"] for f in frames if f["type"] == type_]

    async def close_code(self, timeout: float = 5) -> int:
        await asyncio.wait_for(self.reader, timeout)
        return self.ws.close_code or 1006

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self.reader, 5)


def room_url(server, code: str, token: str | None = None, since=None) -> str:
    query = []
    if token:
        query.append(f"token={token}")
    if since is not None:
        query.append(f"since={since}")
    return server.ws_url(
        f"/ws/sessions/{code}/" + ("?" + "&".join(query) if query else "")
    )


async def open_peer(url: str, headers: dict | None = None) -> tuple[Peer, dict]:
    ws = await connect(url, open_timeout=10, additional_headers=headers)
    peer = Peer(ws)
    (welcome,) = await peer.of_type("session.welcome", 1, timeout=10)
    return peer, welcome


def new_session(server, token: str, title: str = "e2e") -> dict:
    status, body = server.request(
        "POST", "/api/sessions/", {"title": title}, token=token
    )
    assert status == 201, body
    return body


def join_guest(server, code: str, nickname: str) -> dict:
    status, body = server.request(
        "POST", f"/api/sessions/{code}/join/", {"nickname": nickname}
    )
    assert status == 201, body
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with DaphneServer(tmp_path_factory.mktemp("e2e-sessions")) as srv:
        srv.host = srv.create_user("hostess")
        yield srv


async def test_close_codes_on_real_daphne(server):
    session = new_session(server, server.host["access"])
    other = new_session(server, server.host["access"], "other")
    foreign = join_guest(server, other["code"], "stranger")
    async with connect(room_url(server, "ABCDEFGH", server.host["access"])) as ws:
        assert await Peer(ws).close_code() == 4004
    async with connect(room_url(server, session["code"], foreign["token"])) as ws:
        assert await Peer(ws).close_code() == 4005
    async with connect(room_url(server, session["code"])) as ws:
        assert await Peer(ws).close_code() == 4008
    guest = join_guest(server, session["code"], "g")
    status, _ = server.request(
        "PATCH",
        f"/api/sessions/{session['code']}/",
        {"status": "closed"},
        token=server.host["access"],
    )
    assert status == 200
    async with connect(room_url(server, session["code"], guest["token"])) as ws:
        assert await Peer(ws).close_code() == 4010


async def test_three_guests_chat_concurrently_then_one_catches_up(server):
    session = new_session(server, server.host["access"])
    code = session["code"]
    guests = [join_guest(server, code, name) for name in ("ann", "bob", "cy")]
    peers = [(await open_peer(room_url(server, code, g["token"])))[0] for g in guests]
    per_peer = 10
    total = per_peer * len(peers)

    async def chat(peer: Peer, name: str) -> None:
        for i in range(per_peer):
            await peer.send(
                "chat.send", {"content": f"{name}-{i}", "client_id": f"{name}{i}"}
            )

    await asyncio.gather(
        *(chat(p, g["nickname"]) for p, g in zip(peers, guests, strict=True))
    )
    seen = [await p.of_type("chat.message", total, timeout=15) for p in peers]
    for messages in seen:
        assert [m["seq"] for m in messages] == list(range(1, total + 1))
    assert seen[0] == seen[1] == seen[2]

    status, body = server.request(
        "GET", f"/api/sessions/{code}/status/", token=server.host["access"]
    )
    assert status == 200
    assert body["online_count"] == 3 and body["total_participants"] == 4

    # Typing reaches the others only; bad content is refused with the socket alive.
    ann, bob, cy = peers
    await ann.send("typing", {"is_typing": True})
    assert (await bob.of_type("typing", 1))[0]["nickname"] == "ann"
    await ann.send("chat.send", {"content": "x" * 2001}, request_id="big")
    error = (await ann.of_type("error", 1))[0]
    assert error["code"] == "INVALID_MESSAGE"

    # cy's phone drops; what is said meanwhile is replayed exactly on return.
    await cy.close()
    for i in range(3):
        await ann.send("chat.send", {"content": f"while-away-{i}"})
    await bob.of_type("chat.message", 3)
    back = Peer(await connect(room_url(server, code, guests[2]["token"], since=total)))
    frames = await back.until(lambda f: f and f[-1]["type"] == "session.synced")
    assert [f["type"] for f in frames] == (
        ["session.welcome"] + ["chat.message"] * 3 + ["session.synced"]
    )
    assert [f["payload"]["seq"] for f in frames[1:4]] == [
        total + 1,
        total + 2,
        total + 3,
    ]
    assert frames[-1]["payload"] == {"last_seq": total + 3}
    status, history = server.request(
        "GET", f"/api/sessions/{code}/messages/?after={total}", token=guests[0]["token"]
    )
    assert [m["content"] for m in history["results"]] == [
        "while-away-0",
        "while-away-1",
        "while-away-2",
    ]
    for peer in (ann, bob, back):
        await peer.close()


async def test_host_closes_and_every_socket_gets_4010(server):
    session = new_session(server, server.host["access"])
    guest = join_guest(server, session["code"], "g")
    g, _ = await open_peer(room_url(server, session["code"], guest["token"]))
    h, welcome = await open_peer(
        room_url(server, session["code"]),
        headers={"Authorization": f"Bearer {server.host['access']}"},
    )
    assert welcome["you"]["role"] == "host"
    await h.send("session.close")
    for peer in (g, h):
        assert (await peer.of_type("session.closed", 1))[0]["code"] == session["code"]
        assert await peer.close_code() == 4010


def test_two_servers_on_postgres_never_share_a_seq(tmp_path):
    """Two daphne processes write to one session at once: seq 1..n, no gap, no
    duplicate, every client in the same order; then one process dies (kill -9) and
    its clients resume on the other with ``since`` and miss nothing."""
    database_url, drop = fresh_postgres_database()
    env = {
        "REDIS_URL": redis_url(),
        "CACHE_KEY_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
        # Short heartbeat and presence TTL: a killed process's sockets must leave the
        # online list within seconds; live clients (Peer) answer every ping.
        "HEARTBEAT_INTERVAL": "1",
        "PONG_TIMEOUT": "2",
        "PRESENCE_TTL": "5",
    }
    try:
        with DaphneServer(tmp_path / "a", env=env, database_url=database_url) as a:
            _unique_session_ids(database_url)
            with DaphneServer(
                tmp_path / "b", env=env, database_url=database_url, migrate=False
            ) as b:
                host = a.create_user("host")
                asyncio.run(_two_writers(a, b, host))
        assert _stored_seqs(database_url) == list(range(1, 4 * 15 + 3 + 1))
    finally:
        drop()


def _unique_session_ids(database_url: str) -> None:
    """Group names are ``session.<id>``: keep ours apart from other runs on Redis."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('sessions_app_session', 'id'), %s)",
            (secrets.randbelow(10**9) + 1,),
        )


def _stored_seqs(database_url: str) -> list[int]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT seq FROM sessions_app_message ORDER BY seq"
        ).fetchall()
    return [row[0] for row in rows]


async def _two_writers(a: DaphneServer, b: DaphneServer, host: dict) -> None:
    session = new_session(a, host["access"], "scale-out")
    code = session["code"]
    guests = [join_guest(a, code, f"g{i}") for i in range(4)]
    servers = [a, a, b, b]
    peers = [
        (await open_peer(room_url(srv, code, g["token"])))[0]
        for srv, g in zip(servers, guests, strict=True)
    ]
    per_peer = 15
    total = per_peer * len(peers)

    async def chat(peer: Peer, n: int) -> None:
        for i in range(per_peer):
            await peer.send("chat.send", {"content": f"{n}:{i}"})

    await asyncio.gather(*(chat(p, n) for n, p in enumerate(peers)))
    seen = [await p.of_type("chat.message", total, timeout=30) for p in peers]
    for messages in seen:
        assert [m["seq"] for m in messages] == list(range(1, total + 1))
    assert all(messages == seen[0] for messages in seen)

    # Both processes count everyone online (shared presence on Redis).
    for srv in (a, b):
        _, status = srv.request(
            "GET", f"/api/sessions/{code}/status/", token=host["access"]
        )
        assert status["online_count"] == 4, (srv.port, status)

    # b dies without closing anything: its sockets linger in presence for the TTL.
    b.kill()
    survivors = peers[:2]
    for i in range(3):
        await survivors[0].send("chat.send", {"content": f"after-crash-{i}"})
    await survivors[1].of_type("chat.message", 3)
    resumed = [
        (await open_peer(room_url(a, code, g["token"], since=total)))[0]
        for g in guests[2:]
    ]
    for peer in resumed:
        frames = await peer.until(lambda f: f and f[-1]["type"] == "session.synced")
        seqs = [f["payload"]["seq"] for f in frames if f["type"] == "chat.message"]
        assert seqs == [total + 1, total + 2, total + 3]
        await peer.close()
    deadline = time.monotonic() + 15
    while True:  # the dead process's connections leave once their TTL runs out
        _, status = a.request(
            "GET", f"/api/sessions/{code}/status/", token=host["access"]
        )
        if status["online_connections"] == 2:
            break
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    assert status["online_count"] == 2
    for peer in survivors:
        await peer.close()
