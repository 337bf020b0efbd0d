"""Both load clients against the plain ws server (node_ws): the N workloads' specs,
the Node client with its Python driver, and the Python client's tagged senders."""

from __future__ import annotations

import shutil

import pytest

from bench import run
from bench.node import NodeUnavailable, ensure_installed
from bench.targets import load
from tests.services import unavailable

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", autouse=True)
def node_client():
    """Node and the pinned ``ws``, installed as ``make bench`` does (``npm ci``); a
    skip with the reason, a failure in CI (``REQUIRE_SERVICES=1``)."""
    if not shutil.which("node"):
        unavailable("node is not installed")
    try:
        ensure_installed()
    except NodeUnavailable as exc:
        unavailable(f"bench/node cannot be installed: {exc}")


PARAMS = {
    "N1": {"sessions": 3, "size": 4, "users_share": 0.5, "settle_s": 0.2},
    "N2": {"n": 3, "duration_s": 0.5, "concurrency": 3},
    "N3": {"receivers": 5, "senders": 3, "window": 2, "sat_s": 0.5},
    "N5": {
        "sessions": 3,
        "size": 4,
        "users_share": 0.5,
        "settle_s": 0.2,
        "idle_s": 0.5,
        "connect_limit_s": 30,
    },
}


@pytest.fixture
def server(tmp_path):
    target = load("node_ws")
    target.prepare()
    target.start(tmp_path / "node_ws.log")
    yield target
    target.stop()


def measure(target, workload: str, client: str, tag: str) -> dict:
    spec = run.build_spec(target, workload, PARAMS[workload])
    spec.update(workload=workload, server_pid=target.pid, workers=1, deadline_s=60)
    return run.run_loadgen(spec, None, f"test-{tag}", run.CLIENTS[client])


@pytest.mark.parametrize("client", ["python", "node"])
def test_connects_count_every_welcomed_socket_and_server_memory(server, client):
    res = measure(server, "N1", client, f"n1-{client}")

    assert res["connected"] == 12
    assert res["failed"] == 0
    assert res["conn_per_s"] > 0
    assert "rss_per_conn_kb" in res
    assert "server_cpu_pct" in res


@pytest.mark.parametrize("client", ["python", "node"])
def test_round_trips_are_timed_from_the_stamped_ping(server, client):
    res = measure(server, "N2", client, f"n2-{client}")

    assert res["clients"] == 3
    assert res["round_trips"] > 0
    assert res["min_per_client"] > 0
    assert 0 < res["p50_ms"] <= res["p99_ms"]


@pytest.mark.parametrize("client", ["python", "node"])
def test_fan_out_senders_close_their_windows_and_nothing_is_lost(server, client):
    res = measure(server, "N3", client, f"n3-{client}")

    assert res["receivers"] == 5
    assert res["senders"] == 3
    assert res["messages_sent"] > 3 * 2  # windows reopened: echoes were recognised
    assert res["lost"] == 0
    assert res["deliveries"] == res["messages_sent"] * 5
    assert res["min_per_sub"] == res["messages_sent"]


@pytest.mark.parametrize("client", ["python", "node"])
def test_idle_sockets_are_held_and_the_server_measured_while_they_idle(server, client):
    res = measure(server, "N5", client, f"n5-{client}")

    assert res["connected"] == 12 and res["failed"] == 0
    assert res["closed_while_idle"] == 0
    assert res["idle_s"] == 0.5
    assert res["idle_cpu_pct"] >= 0 and "idle_cpu_pct_per_10k" in res
    assert "rss_per_conn_kb" in res
