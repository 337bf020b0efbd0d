"""Redis, PostgreSQL and Chromium for the tests that need them.

A test that needs a service asks for it here. When the service is not reachable we try
to start it (the commands this machine's services were started with); if it still is
not there, the test skips with a reason, unless ``REQUIRE_SERVICES=1`` (CI), where it
fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _required() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "0").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    if _required():
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return True
        time.sleep(0.2)
    return False


def _try(command: list[str]) -> None:
    if shutil.which(command[0]):
        subprocess.run(command, capture_output=True, timeout=60, check=False)


def redis_url() -> str:
    """A reachable Redis (database 15, flushed by the caller if it wants)."""
    if not _port_open(6379):
        Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
        _try(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        )
        if not _wait_port(6379, 10):
            unavailable("Redis is not running on 127.0.0.1:6379")
    return REDIS_URL


def postgres_dsn() -> str:
    """A reachable PostgreSQL server's ``test`` database."""
    if not _port_open(5432):
        if shutil.which("pg_ctlcluster") and Path("/etc/postgresql").exists():
            for version in os.listdir("/etc/postgresql"):
                _try(
                    [
                        "pg_ctlcluster",
                        "--skip-systemctl-redirect",
                        version,
                        "main",
                        "start",
                    ]
                )
        if not _wait_port(5432, 20):
            unavailable("PostgreSQL is not running on 127.0.0.1:5432")
    return PG_DSN


def fresh_postgres_database() -> tuple[str, callable]:
    """Create an empty database; returns its URL and a function that drops it."""
    import psycopg

    dsn = postgres_dsn()
    name = f"rt_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = dsn.rpartition("/")

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM}")
    return CHROMIUM
