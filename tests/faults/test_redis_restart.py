"""Redis restarted under load: the servers recover without a restart, and no
socket is left connected but deaf (the hub closes its sockets 4012 when its
subscription breaks; clients resync with ``since``, then get new messages)."""

from __future__ import annotations

import asyncio
import time

import pytest

from scripts.services import http_status
from tests.faults.helpers import Chatter, OwnRedis, Resuming, create_users, request
from tests.faults.test_kill9 import ENV, chat_seq, stored_seqs

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


@pytest.fixture
def own_redis(tmp_path):
    redis = OwnRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def test_redis_restarted_under_load(make_cluster, own_redis, database_url):
    cluster = make_cluster(servers=2, env=ENV, redis_url=own_redis.url)
    pids = [s.pid for s in cluster.servers]
    (host,) = create_users(cluster, "host")
    front = cluster.balancer.url()
    status, session = request(
        front, "POST", "/api/sessions/", {"title": "r"}, host["access"]
    )
    assert status == 201, session
    code = session["code"]
    tokens = []
    for i in range(6):
        status, guest = request(
            front, "POST", f"/api/sessions/{code}/join/", {"nickname": f"g{i}"}
        )
        assert status == 201, guest
        tokens.append(guest["token"])
    asyncio.run(_under_load(cluster, own_redis, code, tokens))
    # Recovered without a restart: the same processes, ready again.
    assert [s.pid for s in cluster.servers] == pids
    assert all(s.alive() for s in cluster.servers)
    for server in cluster.servers:
        assert http_status(server.url("/readyz"), timeout=5) == 200
    seqs = stored_seqs(database_url, "sessions_app_message")
    assert seqs == list(range(1, len(seqs) + 1))


async def _under_load(cluster, redis: OwnRedis, code: str, tokens: list[str]) -> None:
    servers = cluster.servers

    def url_for(server, token):
        def url(since):
            base = server if since is None else cluster.balancer
            tail = "" if since is None else f"&since={since}"
            return base.ws_url(f"/ws/sessions/{code}/?token={token}{tail}")

        return url

    clients = [
        Resuming(
            url_for(servers[i % 2], t), seq_of=chat_seq, ready="session.welcome"
        ).start()
        for i, t in enumerate(tokens)
    ]
    for client in clients:
        await asyncio.wait_for(client.connected.wait(), 15)
    chat = Chatter(clients)  # every client sends, 10 a second, until stopped
    await asyncio.sleep(2)
    redis.kill()
    await asyncio.sleep(3)
    redis.start()  # empty: presence, tickets and counters start again
    back = time.monotonic()
    await asyncio.sleep(3)
    await chat.stop()
    # Every socket saw the loss (4012 from its hub) and came back on its own; a
    # reconnect while Redis was down was refused (4011, or 1011 from the server
    # when admission itself failed) and tried again later.
    for client in clients:
        await asyncio.wait_for(client.connected.wait(), 30)
        assert client.connects >= 2, (client.connects, client.closes)
        assert client.closes[0] == 4012, client.closes
        assert set(client.closes) <= {4012, 4011, 1011}, client.closes
    recovered = time.monotonic() - back
    # Nobody is deaf: a message sent now reaches every client, and with the replay
    # with since each holds every stored message.
    await clients[0].send("chat.send", {"content": "after"})
    await asyncio.sleep(0.5)
    seqs = stored_seqs(cluster.database_url, "sessions_app_message")
    for client in clients:
        await client.wait_for_seqs(set(seqs), timeout=15)
    closes = sorted({code for c in clients for code in c.closes})
    print(f"clients back {recovered:.1f} s after Redis returned; closes {closes}")
    for client in clients:
        await client.stop()
