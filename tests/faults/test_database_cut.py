"""PostgreSQL unreachable for 10 s (the servers reach it through a TCP proxy of
the test's own, which stops forwarding): writes answer a clear retryable error,
nothing is half-written, sockets survive, and writes work again after."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.faults.helpers import Resuming, TcpProxy, create_users, request
from tests.faults.test_kill9 import chat_seq, stored_seqs

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

OUTAGE = 10  # seconds without the database


@pytest.fixture
def proxy(database_url):
    parts = urlsplit(database_url)
    forwarder = TcpProxy(parts.port or 5432)
    forwarder.start()
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{forwarder.port}"
    forwarder.url = urlunsplit(parts._replace(netloc=netloc))
    yield forwarder
    forwarder.stop()


def test_database_cut_off_for_10_seconds(make_cluster, proxy, database_url):
    cluster = make_cluster(
        servers=1,
        balancer=False,
        database_url=proxy.url,
        # A query waits at most 2 s for a connection, then answers Unavailable.
        env={"HEARTBEAT_INTERVAL": "2", "DATABASE_POOL_TIMEOUT": "2"},
    )
    (server,) = cluster.servers
    (host,) = create_users(cluster, "host")
    status, session = request(
        server.url(), "POST", "/api/sessions/", {"title": "db"}, host["access"]
    )
    assert status == 201, session
    code = session["code"]
    tokens = []
    for i in range(3):
        status, guest = request(
            server.url(), "POST", f"/api/sessions/{code}/join/", {"nickname": f"g{i}"}
        )
        tokens.append(guest["token"])
    outcome = asyncio.run(_cut(server, proxy, code, tokens, host))
    # Nothing half-written: seqs without a gap, and exactly the messages whose
    # sends were confirmed are stored.
    seqs = stored_seqs(database_url, "sessions_app_message")
    assert seqs == list(range(1, len(seqs) + 1))
    import psycopg

    with psycopg.connect(database_url) as conn:
        stored = {
            row[0] for row in conn.execute("SELECT content FROM sessions_app_message")
        }
    assert stored == outcome["confirmed"]
    print(json.dumps({k: v for k, v in outcome.items() if k != "confirmed"}))


async def _cut(server, proxy: TcpProxy, code: str, tokens, host) -> dict:
    clients = [
        Resuming(
            lambda since, t=t: server.ws_url(f"/ws/sessions/{code}/?token={t}"),
            seq_of=chat_seq,
            ready="session.welcome",
            resume=False,
        ).start()
        for t in tokens
    ]
    for client in clients:
        await asyncio.wait_for(client.connected.wait(), 15)
    sender = clients[0]
    confirmed: set[str] = set()
    answers: dict[str, dict] = {}

    async def send(content: str, timeout: float) -> dict:
        """chat.send and the answer to it: its chat.message, or its error."""
        await sender.send("chat.send", {"content": content}, request_id=content)
        async with asyncio.timeout(timeout):
            while True:
                frame = await sender.frames.get()
                if (
                    frame["type"] == "chat.message"
                    and frame["payload"]["content"] == content
                ):
                    confirmed.add(content)
                    return frame
                if frame["type"] == "error" and frame.get("request_id") == content:
                    return frame

    for i in range(3):
        assert (await send(f"before-{i}", 5))["type"] == "chat.message"
    proxy.cut()
    cut_at = time.monotonic()
    errors, waits = [], []
    while time.monotonic() - cut_at < OUTAGE - 1:
        started = time.monotonic()
        answer = await send(f"during-{len(waits)}", OUTAGE + 5)
        waits.append(round(time.monotonic() - started, 2))
        answers[f"during-{len(waits) - 1}"] = answer
        if answer["type"] == "error":
            errors.append(answer["payload"])
        await asyncio.sleep(0.5)
    # A REST write (a guest joining) says the same: 503 with Retry-After.
    rest_during, body = await asyncio.to_thread(
        request,
        server.url(),
        "POST",
        f"/api/sessions/{code}/join/",
        {"nickname": "late"},
    )
    assert rest_during == 503, body
    assert body == {"detail": "temporarily unavailable, try again"}, body
    await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - cut_at)))
    proxy.restore()
    restored = time.monotonic()
    # Writes work again (the first may still find a dead pooled connection).
    after = None
    while time.monotonic() - restored < 15:
        after = await send(f"after-{int(time.monotonic() * 1000)}", 10)
        if after["type"] == "chat.message":
            break
        await asyncio.sleep(0.5)
    assert after is not None and after["type"] == "chat.message", after
    # Every socket survived the outage, and hears the new message.
    for client in clients:
        assert client.connects == 1 and client.closes == [], client.closes
        await client.wait_for_seqs({after["payload"]["seq"]}, timeout=10)
    assert errors, f"no write failed during the outage: waits {waits}"
    for error in errors:
        assert error["code"] == "INTERNAL" and error["retry_after"] == 1.0, error
        assert error["message"] == "temporarily unavailable, try again", error
    for client in clients:
        await client.stop()
    return {
        "confirmed": confirmed,
        "waits": waits,
        "errors": len(errors),
        "rest_during": rest_during,
        "back_after": round(time.monotonic() - restored, 2),
    }
