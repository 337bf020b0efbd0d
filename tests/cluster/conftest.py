"""A local Redis Cluster for the tests here: three masters on free loopback ports
(``scripts.services.RedisClusterProcesses``), started once for the run and stopped
by their PIDs; tests that kill a node start a cluster of their own (with a replica
per master for the failover tests)."""

from __future__ import annotations

import shutil

import pytest

from scripts.services import ClusterError, RedisClusterProcesses
from tests.services import unavailable


def start_cluster(workdir, replicas: int = 0) -> RedisClusterProcesses:
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (apt-get install redis-server)")
    # Its ports are free when chosen, not reserved: another process may take one
    # before its node binds it. A start that fails is tried again on new ports.
    for attempt in range(3):
        try:
            return RedisClusterProcesses(
                workdir / f"try-{attempt}", replicas=replicas
            ).start()
        except ClusterError as exc:
            failure = exc
    unavailable(f"a local Redis Cluster did not start: {failure}")
    raise failure


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def own_redis_cluster(tmp_path):
    """A cluster this test may take a node of away."""
    cluster = start_cluster(tmp_path / "redis-cluster")
    yield cluster
    cluster.stop()


@pytest.fixture
def replica_cluster(tmp_path):
    """Three masters and a replica each: a killed master's replica takes over."""
    cluster = start_cluster(tmp_path / "redis-cluster", replicas=1)
    yield cluster
    cluster.stop()
