"""Two real daphne processes on a Redis Cluster: broadcasts, presence, readiness."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import frame
from tests.e2e.server import DaphneServer
from tests.services import fresh_postgres_database

pytestmark = pytest.mark.timeout(90)


def test_two_processes_on_a_cluster(tmp_path, redis_cluster):
    database_url, drop = fresh_postgres_database()
    env = {
        "REDIS_URL": redis_cluster.url,
        "CACHE_KEY_PREFIX": f"cl-{uuid.uuid4().hex[:8]}",
    }
    try:
        with DaphneServer(tmp_path / "a", env=env, database_url=database_url) as a:
            with DaphneServer(
                tmp_path / "b", env=env, database_url=database_url, migrate=False
            ) as b:
                staff = a.create_user("boss", staff=True)
                user = a.create_user("carol")
                asyncio.run(_scenario(a, b, user["access"], staff["access"]))
                for srv in (a, b):
                    status, ready = srv.request("GET", "/readyz")
                    assert status == 200, ready
                    assert ready["checks"]["redis_cluster"] == "ok"
                    assert "channel_layer" not in ready["checks"]
    finally:
        drop()


async def _scenario(a, b, token: str, staff: str) -> None:
    async with connect(a.ws_url(f"/ws/echo/?token={token}")) as one:
        async with connect(b.ws_url(f"/ws/echo/?token={token}")) as two:
            await frame(one)
            await frame(two)
            for n in range(5):  # one process's broadcast reaches the other's socket
                await one.send(
                    json.dumps({"type": "echo.broadcast", "payload": {"n": n}})
                )
            for ws in (one, two):
                got = [(await frame(ws))["payload"]["payload"]["n"] for _ in range(5)]
                assert got == [0, 1, 2, 3, 4]
            for srv in (a, b):  # presence, shared through the cluster
                status, stats = srv.request("GET", "/api/realtime/stats/", token=staff)
                assert status == 200
                assert stats["total_connections"] == 2
                assert stats["by_endpoint"] == {"echo": 2}
