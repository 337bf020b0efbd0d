"""The fault suite runs only when asked for (``make faults``: ``-m faults``).

Each test starts its own cluster (``scripts.cluster.Cluster``) on a fresh
PostgreSQL database and its own key prefix on Redis, and stops it by PID.
"""

from __future__ import annotations

import shutil
import uuid

import pytest

from scripts.cluster import Cluster
from scripts.services import raise_file_limit
from tests.services import fresh_postgres_database, redis_url, unavailable


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "faults: real processes killed and services cut (make faults)"
    )


def pytest_collection_modifyitems(config, items) -> None:
    # `make test` collects everything under tests/: leave the fault tests out unless
    # the run selects them by marker.
    if "faults" in (config.option.markexpr or ""):
        return
    skipped = [item for item in items if item.get_closest_marker("faults")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if not item.get_closest_marker("faults")]


@pytest.fixture
def database_url():
    url, drop = fresh_postgres_database()
    yield url
    drop()


@pytest.fixture
def make_cluster(tmp_path, database_url):
    """``make_cluster(servers=2, env={...})``: a started cluster on this test's
    database, stopped at the end of the test."""
    if shutil.which("haproxy") is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    raise_file_limit()
    clusters: list[Cluster] = []

    def make(**options) -> Cluster:
        env = {"CACHE_KEY_PREFIX": f"faults-{uuid.uuid4().hex[:8]}"}
        env.update(options.pop("env", {}))
        options.setdefault("redis_url", redis_url())
        options.setdefault("database_url", database_url)
        cluster = Cluster(workdir=tmp_path / f"c{len(clusters)}", env=env, **options)
        clusters.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()
