"""The messenger against real daphne processes and a real WebSocket client.

Alice, and Bob on two devices; then two daphne processes on Redis and PostgreSQL
with Bob's devices on different processes, and one process killed.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from websockets.asyncio.client import connect

from tests.e2e.server import DaphneServer
from tests.e2e.test_sessions_e2e import Peer
from tests.services import fresh_postgres_database, redis_url

pytestmark = pytest.mark.timeout(120)


async def device(server: DaphneServer, user: dict) -> tuple[Peer, dict]:
    ws = await connect(
        server.ws_url(f"/ws/messenger/?token={user['access']}"), open_timeout=10
    )
    peer = Peer(ws)
    (hello,) = await peer.of_type("system.connected", 1, timeout=10)
    return peer, hello


async def subscribe(peer: Peer, cid: str, since: int | None = None) -> dict:
    payload = {"conversation_id": cid} | ({} if since is None else {"since": since})
    await peer.send("conversation.subscribe", payload)
    (subscribed,) = await peer.of_type("conversation.subscribed", 1)
    return subscribed


def direct(server: DaphneServer, alice: dict, bob: dict) -> str:
    status, body = server.request(
        "POST",
        "/api/conversations/",
        {"kind": "direct", "member_ids": [bob["id"]]},
        token=alice["access"],
    )
    assert status in (200, 201), body
    return body["id"]


def test_a_conversation_on_one_real_daphne(tmp_path):
    with DaphneServer(tmp_path) as server:
        alice, bob = server.create_user("alice"), server.create_user("bob")
        cid = direct(server, alice, bob)
        asyncio.run(_one_server(server, alice, bob, cid))


async def _one_server(server: DaphneServer, alice: dict, bob: dict, cid: str) -> None:
    a, _ = await device(server, alice)
    b1, hello = await device(server, bob)
    assert hello["online"] == [alice["id"]]
    (online,) = await a.of_type("user.online", 1)
    assert online["user_id"] == bob["id"]
    b2, _ = await device(server, bob)
    for peer in (a, b1, b2):
        await subscribe(peer, cid)
    await a.send("message.send", {"conversation_id": cid, "content": "over the wire"})
    got = [(await p.of_type("message.new", 1))[0] for p in (a, b1, b2)]
    assert {(m["seq"], m["content"]) for m in got} == {(1, "over the wire")}
    status, body = server.request(
        "POST",
        f"/api/conversations/{cid}/messages/",
        {"content": "by REST"},
        token=bob["access"],
    )
    assert status == 201, body
    (new,) = await a.of_type("message.new", 1)
    assert (new["seq"], new["content"]) == (2, "by REST")
    await b1.close()
    await b2.close()
    (offline,) = await a.of_type("user.offline", 1)
    assert offline["user_id"] == bob["id"]
    await a.close()


def test_two_servers_share_conversations_presence_and_a_death(tmp_path):
    """Bob's devices on two processes; a socket write and a REST write on either
    reach every device in one order; the process holding Bob's only device is
    killed and Alice, on the other, sees him go offline within the presence TTL."""
    database_url, drop = fresh_postgres_database()
    env = {
        "REDIS_URL": redis_url(),
        "CACHE_KEY_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
        "HEARTBEAT_INTERVAL": "1",
        "PONG_TIMEOUT": "2",
        "PRESENCE_TTL": "3",
        "MESSENGER_PRESENCE_SWEEP": "0.5",
    }
    try:
        with DaphneServer(tmp_path / "a", env=env, database_url=database_url) as a:
            with DaphneServer(
                tmp_path / "b", env=env, database_url=database_url, migrate=False
            ) as b:
                alice, bob = a.create_user("alice"), a.create_user("bob")
                cid = direct(a, alice, bob)
                asyncio.run(_two_servers(a, b, alice, bob, cid))
    finally:
        drop()


async def _two_servers(a, b, alice: dict, bob: dict, cid: str) -> None:
    alice_a, _ = await device(a, alice)
    bob_a, _ = await device(a, bob)
    (online,) = await alice_a.of_type("user.online", 1)
    assert online["user_id"] == bob["id"]
    bob_b, hello = await device(b, bob)  # a second device, on the other process
    assert hello["online"] == [alice["id"]]  # presence is shared through Redis
    for peer in (alice_a, bob_a, bob_b):
        await subscribe(peer, cid)
    await bob_b.send("message.send", {"conversation_id": cid, "content": "from b"})
    status, body = b.request(
        "POST",
        f"/api/conversations/{cid}/messages/",
        {"content": "REST on b"},
        token=alice["access"],
    )
    assert status == 201, body
    await alice_a.send("message.send", {"conversation_id": cid, "content": "from a"})
    seen = [
        await p.of_type("message.new", 3, timeout=10) for p in (alice_a, bob_a, bob_b)
    ]
    for messages in seen:
        assert [m["seq"] for m in messages] == [1, 2, 3]
        assert messages == seen[0]
    # Bob leaves a's device: he is still online on b. Then b dies, saying nothing.
    await bob_a.close()
    assert not [
        f for f in await _frames_for(alice_a, 1.0) if f["type"] == "user.offline"
    ]
    b.kill()
    started = time.monotonic()
    (offline,) = await alice_a.of_type("user.offline", 1, timeout=15)
    assert offline["user_id"] == bob["id"]
    assert time.monotonic() - started < 3 + 0.5 + 2  # TTL + sweep + slack
    await alice_a.close()


async def _frames_for(peer: Peer, seconds: float) -> list[dict]:
    frames = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(await peer.frames.get())
    except TimeoutError:
        return frames
