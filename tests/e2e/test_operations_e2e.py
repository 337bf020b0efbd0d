"""Metrics and logs on two real daphne processes: each counts its own traffic (one
endpoint per process, scraped each), and every log line is JSON with its trace."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request

import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import frame
from tests.e2e.server import DaphneServer, free_port

pytestmark = pytest.mark.timeout(120)

# daphne writes its access log itself, not through logging: one plain line per
# request and per socket event (WSCONNECT, WSDISCONNECT, ...).
ACCESS_LOG = re.compile(r'^\S+ - - \[[^\]]+\] "[A-Z]+ [^"]*"')


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def value(text: str, sample: str) -> float:
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def session(server: DaphneServer, token: str, echoes: int) -> str:
    """One echo socket that sends ``echoes`` frames; its connection (trace) id."""
    url = server.ws_url(f"/ws/echo/?token={token}")
    async with connect(url, open_timeout=5) as ws:
        trace = (await frame(ws, "echo.ready"))["payload"]["connection_id"]
        for n in range(echoes):
            await ws.send(json.dumps({"type": "echo", "payload": {"n": n}}))
            await frame(ws, "echo")
    return trace


def test_two_processes_each_expose_their_own_traffic_and_json_logs(tmp_path):
    ports = free_port(), free_port()
    servers = [
        DaphneServer(
            tmp_path / name,
            env={"LOG_FORMAT": "json", "METRICS_PORT": str(port)},
        )
        for name, port in zip(("a", "b"), ports, strict=True)
    ]
    for server in servers:
        server.start()
    try:
        a, b = servers
        alice, bob = a.create_user("alice"), b.create_user("bob")

        async def traffic() -> list[str]:
            return [
                await session(a, alice["access"], 3),
                await session(a, alice["access"], 3),
                await session(b, bob["access"], 1),
            ]

        traces = asyncio.run(traffic())
        accepted = 'realtime_connections_accepted_total{endpoint="echo"}'
        echoes = 'realtime_messages_received_total{endpoint="echo",type="echo"}'
        seen = {}
        for server, port in zip(servers, ports, strict=True):
            main = scrape(server.url("/metrics"))
            own = scrape(f"http://127.0.0.1:{port}/metrics")  # METRICS_PORT
            for text in (main, own):
                assert "process_resident_memory_bytes" in text
            seen[server.port] = (value(own, accepted), value(own, echoes))
            assert (value(main, accepted), value(main, echoes)) == seen[server.port]
        # Per process, not summed: Prometheus adds the two targets up.
        assert seen[a.port] == (2, 6) and seen[b.port] == (1, 1)

        for server, token, own_traces in (
            (a, alice["access"], traces[:2]),
            (b, bob["access"], traces[2:]),
        ):
            server.stop()  # flushes the log
            log = server.log()
            lines = []
            for line in filter(str.strip, log.splitlines()):
                if ACCESS_LOG.match(line):
                    continue  # daphne's own access log: plain, off with -v 0
                lines.append(json.loads(line))  # everything else is one JSON object
            assert lines, "nothing was logged"
            for trace in own_traces:
                mine = [line for line in lines if line.get("trace_id") == trace]
                assert any("socket closed" in line["message"] for line in mine)
                assert all(line["endpoint"] == "echo" for line in mine)
            assert token not in log and token.split(".")[2] not in log
    finally:
        for server in servers:
            server.stop()
