"""kill -9 of one server mid-conversation: its clients come back through the
balancer on the other with ``since`` and lose no stored message; its connections
leave presence within the TTL; a messenger user whose only device was there goes
offline."""

from __future__ import annotations

import asyncio
import json
import time

import psycopg
import pytest

from tests.faults.helpers import Chatter, Resuming, create_users, request

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

# Short liveness so that a dead process's sockets leave presence within seconds;
# the clients answer every ping.
ENV = {
    "HEARTBEAT_INTERVAL": "1",
    "PONG_TIMEOUT": "2",
    "PRESENCE_TTL": "4",
    "MESSENGER_PRESENCE_SWEEP": "0.5",
}


def chat_seq(frame: dict) -> int | None:
    return frame["payload"]["seq"] if frame["type"] == "chat.message" else None


def stored_seqs(database_url: str, table: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f"SELECT seq FROM {table} ORDER BY seq").fetchall()  # noqa: S608
    return [row[0] for row in rows]


def test_a_killed_server_s_room_clients_resume_on_the_other(make_cluster, database_url):
    cluster = make_cluster(servers=2, env=ENV)
    (host,) = create_users(cluster, "host")
    front = cluster.balancer.url()
    status, session = request(
        front, "POST", "/api/sessions/", {"title": "k"}, host["access"]
    )
    assert status == 201, session
    code = session["code"]
    guests = []
    for i in range(6):
        status, guest = request(
            front, "POST", f"/api/sessions/{code}/join/", {"nickname": f"g{i}"}
        )
        assert status == 201, guest
        guests.append(guest)
    s1, s2 = cluster.servers
    asyncio.run(_room(cluster, s1, s2, code, guests, host))
    seqs = stored_seqs(database_url, "sessions_app_message")
    assert seqs == list(range(1, len(seqs) + 1))


async def _room(cluster, s1, s2, code, guests, host) -> None:
    def url_for(server, token):
        def url(since):
            # First on the given server; every reconnect goes through the balancer.
            base = server if since is None else cluster.balancer
            tail = "" if since is None else f"&since={since}"
            return base.ws_url(f"/ws/sessions/{code}/?token={token}{tail}")

        return url

    placed = [s1, s1, s1, s2, s2, s2]
    clients = [
        Resuming(
            url_for(srv, g["token"]), seq_of=chat_seq, ready="session.welcome"
        ).start()
        for srv, g in zip(placed, guests, strict=True)
    ]
    for client in clients:
        await asyncio.wait_for(client.connected.wait(), 15)
    chat = Chatter(clients)  # every client sends, 10 a second, until stopped
    await asyncio.sleep(2)
    s2.kill()  # mid-conversation: every client is sending
    killed = time.monotonic()
    await asyncio.sleep(3)
    await chat.stop()
    for client in clients[3:]:  # back, on the survivor, through the balancer
        await asyncio.wait_for(client.connected.wait(), 20)
        assert client.connects == 2 and client.closes == [1006]
    await clients[0].send("chat.send", {"content": "last"})
    front = cluster.balancer.url()
    _, history = request(
        front, "GET", f"/api/sessions/{code}/status/", token=host["access"]
    )
    # Every stored message reached every client, the moved ones included.
    final = _stored_last(cluster)
    for client in clients:
        await client.wait_for_seqs(set(range(1, final + 1)), timeout=15)
    # The dead process's 3 connections leave presence once their TTL runs out.
    while True:
        _, status = request(
            front, "GET", f"/api/sessions/{code}/status/", token=host["access"]
        )
        if status["online_connections"] == 6:
            break
        assert time.monotonic() - killed < 4 + 3, status  # TTL + slack
        await asyncio.sleep(0.2)
    for client in clients:
        await client.stop()


def _stored_last(cluster) -> int:
    time.sleep(0.5)  # the "last" message's commit
    seqs = stored_seqs(cluster.database_url, "sessions_app_message")
    return seqs[-1]


def test_a_killed_server_s_messenger_users_go_offline(make_cluster):
    cluster = make_cluster(servers=2, env=ENV)
    alice, bob, carol = create_users(cluster, "alice", "bob", "carol")
    front = cluster.balancer.url()
    cids = {}
    for other in (bob, carol):
        status, body = request(
            front,
            "POST",
            "/api/conversations/",
            {"kind": "direct", "member_ids": [other["id"]]},
            alice["access"],
        )
        assert status in (200, 201), body
        cids[other["name"]] = body["id"]
    asyncio.run(_messenger(cluster, alice, bob, carol, cids))


async def _messenger(cluster, alice, bob, carol, cids) -> None:
    s1, s2 = cluster.servers

    def device(server, user, cid):
        def url(since):
            base = server if since is None else cluster.balancer
            return base.ws_url(f"/ws/messenger/?token={user['access']}")

        async def opened(ws, since):
            payload = {"conversation_id": cid}
            if since is not None:
                payload["since"] = since
            await ws.send(
                json.dumps({"type": "conversation.subscribe", "payload": payload})
            )

        return Resuming(
            url, seq_of=message_seq, opened=opened, ready="conversation.subscribed"
        )

    a_bob = device(s1, alice, cids["bob"]).start()
    a_carol = device(s1, alice, cids["carol"]).start()
    for client in (a_bob, a_carol):  # Alice is on before Bob comes
        await _until(client, lambda f: f["type"] == "system.connected")
    b = device(s2, bob, cids["bob"])
    b.resume = False  # Bob's only device dies with s2 and stays gone
    b.start()
    c = device(s2, carol, cids["carol"]).start()
    for client in (b, c):
        await asyncio.wait_for(client.connected.wait(), 15)
    await _until(
        a_bob,
        lambda f: f["type"] == "user.online" and f["payload"]["user_id"] == bob["id"],
    )
    for i in range(5):
        await a_carol.send(
            "message.send", {"conversation_id": cids["carol"], "content": f"m{i}"}
        )
    await c.wait_for_seqs({1, 2, 3, 4, 5}, timeout=10)
    cluster.servers[1].kill()
    killed = time.monotonic()
    for i in range(5, 10):  # while Carol is away
        await a_carol.send(
            "message.send", {"conversation_id": cids["carol"], "content": f"m{i}"}
        )
    offline = await _until(
        a_bob,
        lambda f: f["type"] == "user.offline" and f["payload"]["user_id"] == bob["id"],
        timeout=15,
    )
    assert offline and time.monotonic() - killed < 4 + 0.5 + 2.5  # TTL + sweep + slack
    await c.wait_for_seqs(set(range(1, 11)), timeout=20)  # resumed with since
    assert c.connects == 2
    for client in (a_bob, a_carol, b, c):
        await client.stop()


def message_seq(frame: dict) -> int | None:
    return frame["payload"]["seq"] if frame["type"] == "message.new" else None


async def _until(client: Resuming, match, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = await client.frames.get()
            if match(frame):
                return frame
