"""Crowds: 1,000 clients reconnecting at once through the balancer, and 2,000
sockets across two processes all receiving one broadcast."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from scripts.services import raise_file_limit
from tests.faults.helpers import connect_with_backoff, create_users, percentile

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

# Each socket costs a descriptor here, one per server and two in HAProxy.
ENV = {"ECHO_THROTTLES": "echo.broadcast=100/1"}


async def _open(
    url: str, count: int, *, deadline: float, parallel: int = 100, again: bool = False
):
    """``count`` echo sockets, at most ``parallel`` handshakes at a time, each
    retried with the browser client's full-jitter backoff (1 s doubling to 30 s);
    ``again``: reconnects, which wait their jitter first."""
    gate = asyncio.Semaphore(parallel)

    async def one():
        async with gate:
            ws = await connect_with_backoff(
                url,
                deadline=deadline,
                base=1.0,
                cap=30.0,
                wait_first=again,
                compression=None,
            )
            assert json.loads(await ws.recv())["type"] == "echo.ready"
            return ws

    return await asyncio.gather(*(one() for _ in range(count)))


PROBE = """
import sys, time, urllib.request
worst = 0.0
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for url in sys.argv[2:]:
        started = time.monotonic()
        try:
            urllib.request.urlopen(url, timeout=5).read()
            took = time.monotonic() - started
        except OSError:
            took = 99.0
        worst = max(worst, took)
    time.sleep(0.2)
print(worst)
"""


def _probe(urls: list[str], seconds: float) -> subprocess.Popen:
    """GET each ``/healthz`` every 0.2 s for ``seconds`` from a process of its own
    (the clients' handshakes here would delay a thread of this one); it prints
    the slowest answer's seconds."""
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, str(seconds), *urls],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_1000_clients_reconnect_at_once(make_cluster):
    raise_file_limit()
    cluster = make_cluster(servers=2, env=ENV)
    (alice,) = create_users(cluster, "alice")
    url = cluster.balancer.ws_url(f"/ws/echo/?token={alice['access']}")
    asyncio.run(_storm(cluster, url))


async def _storm(cluster, url: str) -> None:
    sockets = await _open(url, 1000, deadline=time.monotonic() + 90)
    probe = _probe([s.url("/healthz") for s in cluster.servers], 20)
    # Every connection drops at the same moment (a network blip at the clients'
    # side): all 1,000 reconnect at once, each with full-jitter backoff.
    for ws in sockets:
        ws.transport.abort()
    dropped = time.monotonic()
    back = await _open(url, 1000, deadline=dropped + 60, parallel=1000, again=True)
    took = time.monotonic() - dropped
    out, _ = await asyncio.to_thread(probe.communicate, timeout=60)
    worst = float(out)
    print(f"1000 back in {took:.1f} s; healthz worst {worst * 1000:.0f} ms")
    assert took < 60, took
    # Measured here (2 cores shared by both servers, HAProxy and these 1,000
    # clients): 0.26-0.88 s at the peak over fourteen runs. It was 0.5-1.1 s with
    # Twisted's listen backlog of 50 (a dropped SYN waits 1 s for the kernel to send
    # it again) and full collections walking every startup object
    # (realtime/gcpolicy.py).
    assert worst < 1.0, worst
    await asyncio.gather(*(ws.close() for ws in back))


def test_2000_sockets_on_two_processes_get_one_broadcast(make_cluster):
    raise_file_limit()
    cluster = make_cluster(servers=2, env=ENV)
    (alice,) = create_users(cluster, "alice")
    asyncio.run(_broadcast(cluster, alice["access"]))


async def _broadcast(cluster, token: str) -> None:
    deadline = time.monotonic() + 120
    per_server = [
        await _open(s.ws_url(f"/ws/echo/?token={token}"), 1000, deadline=deadline)
        for s in cluster.servers
    ]
    sockets = [ws for group in per_server for ws in group]
    sent = time.monotonic()
    await sockets[0].send(json.dumps({"type": "echo.broadcast", "payload": {"n": 1}}))

    async def receive(ws) -> float:
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "echo.broadcasted":
                assert frame["payload"]["payload"] == {"n": 1}
                return time.monotonic() - sent

    delays = await asyncio.wait_for(
        asyncio.gather(*(receive(ws) for ws in sockets)), 30
    )
    assert len(delays) == 2000
    print(
        f"2000 sockets: broadcast to all in {max(delays) * 1000:.0f} ms "
        f"(p50 {percentile(delays, 0.5) * 1000:.0f} ms)"
    )
    await asyncio.gather(*(ws.close() for ws in sockets))
