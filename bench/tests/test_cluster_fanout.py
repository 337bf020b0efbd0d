"""bench.cluster_fanout on a small load: both setups measured, nothing lost."""

from __future__ import annotations

import shutil

import pytest

from bench import cluster_fanout
from tests.services import unavailable

pytestmark = pytest.mark.timeout(120)


def test_one_node_and_three_nodes_deliver_every_broadcast(capsys):
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (apt-get install redis-server)")
    report = cluster_fanout.main(
        [
            "--groups",
            "20",
            "--messages",
            "300",
            "--publishers",
            "1",
            "--subscribers",
            "1",
            "--concurrency",
            "16",
        ]
    )
    results = report["results"]
    assert set(results) == {"1 node", "3 nodes"}
    assert results["1 node"]["url"].startswith("redis://")
    assert results["3 nodes"]["url"].startswith("redis+cluster://")
    assert len(results["3 nodes"]["redis_cpu_s"]) == 3
    for result in results.values():
        # Every broadcast reached the subscriber (a retried publish may repeat one).
        assert result["delivered"] >= result["expected_deliveries"] == 300
        assert result["published_per_s"] > 0 and result["delivered_per_s"] > 0
    out = capsys.readouterr().out
    assert "1 node" in out and "3 nodes" in out and "published/s" in out
