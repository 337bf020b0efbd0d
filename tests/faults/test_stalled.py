"""100 clients that stop reading in a room receiving 200 messages a second: the
others keep their latency, each stalled client is closed 4012 once it is
``REALTIME_MAX_QUEUED_BYTES`` behind, and the server's memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from websockets.asyncio.client import connect

from tests.faults.helpers import create_users, metric, percentile, rss_mib

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

MAX_QUEUED = 256 * 1024
ENV = {
    "REALTIME_MAX_QUEUED_BYTES": str(MAX_QUEUED),
    "ECHO_THROTTLES": "echo.broadcast=1000/1",
    # The heartbeat must not be what closes a stalled client within the test.
    "HEARTBEAT_INTERVAL": "120",
}
RATE = 200  # broadcasts a second
BLOB = "x" * 4000  # ~4 KB a frame: 800 KB/s for each client


@pytest.mark.parametrize(
    "server",
    ["daphne", "uvicorn"],
)
def test_stalled_clients_are_cut_off_and_the_others_keep_their_latency(
    make_cluster, server
):
    cluster = make_cluster(servers=1, server=server, balancer=False, env=ENV)
    (alice,) = create_users(cluster, "alice")
    result = asyncio.run(_room(cluster.servers[0], alice["access"]))
    print(f"{server}: {json.dumps(result)}")
    assert result["closed_4012"] == 100, result
    # The others keep their latency: the typical delivery as before, and no reader
    # held up for seconds. p99 itself is not compared with the phase before: on two
    # cores shared by this client, the server, PostgreSQL and Redis it moved from
    # 4 to 340 ms between runs before any client stalled, and from 90 to 1,600 ms
    # with them, on this change and on the code before it alike.
    assert result["p50_stalled_ms"] <= max(3 * result["p50_before_ms"], 50), result
    assert result["p99_stalled_ms"] <= 2000, result
    assert result["rss_growth_mib"] < 200, result


async def _room(srv, token: str) -> dict:
    url = srv.ws_url(f"/ws/echo/?token={token}")
    closes_before = metric(srv.url(), "realtime_closes_total", 'code="4012"')
    readers = [await connect(url, compression=None, max_queue=None) for _ in range(10)]
    sender = await connect(url, compression=None, max_queue=None)
    for ws in [*readers, sender]:
        assert json.loads(await ws.recv())["type"] == "echo.ready"
    latencies: list[tuple[float, float]] = []  # (when received, latency)

    async def read(ws) -> None:
        async for text in ws:
            frame = json.loads(text)
            if frame["type"] == "echo.broadcasted":
                now = time.monotonic()
                latencies.append((now, now - frame["payload"]["payload"]["t"]))

    async def send(seconds: float) -> None:
        end = time.monotonic() + seconds
        i = 0
        start = time.monotonic()
        while time.monotonic() < end:
            payload = {"t": time.monotonic(), "b": BLOB}
            await sender.send(
                json.dumps({"type": "echo.broadcast", "payload": payload})
            )
            i += 1
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))

    tasks = [asyncio.create_task(read(ws)) for ws in [*readers, sender]]
    await send(3)
    before = [lat for _, lat in latencies]
    rss_start = rss_mib(srv.pid)
    # 100 clients that stop reading: a tiny receive buffer and no reads.
    stalled = []
    for _ in range(100):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", srv.port))
        stalled.append(await connect(url, sock=sock, max_queue=1, compression=None))
    stall_from = time.monotonic()
    await send(15)
    during = [lat for when, lat in latencies if when > stall_from]
    rss_peak = rss_mib(srv.pid)
    closed = metric(srv.url(), "realtime_closes_total", 'code="4012"') - closes_before
    for task in tasks:
        task.cancel()
    for ws in [*readers, sender, *stalled]:
        ws.transport.abort()
    return {
        "closed_4012": int(closed),
        "p50_before_ms": round(percentile(before, 0.5) * 1000, 1),
        "p50_stalled_ms": round(percentile(during, 0.5) * 1000, 1),
        "p99_before_ms": round(percentile(before, 0.99) * 1000, 1),
        "p99_stalled_ms": round(percentile(during, 0.99) * 1000, 1),
        "rss_start_mib": round(rss_start, 1),
        "rss_peak_mib": round(rss_peak, 1),
        "rss_growth_mib": round(rss_peak - rss_start, 1),
    }
