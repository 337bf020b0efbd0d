"""The seed's messenger (FastAPI + a Redis channel per user) under uvicorn, with its
own redis-server: both are the server, on the server's core, in its CPU figure."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from .base import (
    DEVICES_PER_USER,
    HOST,
    Messenger,
    Target,
    TargetUnavailable,
    free_port,
    messenger_devices,
    messenger_plan,
    uvicorn_command,
)
from .http import post_json

APP = "bench.baselines.fastapi_messenger:app"


class BaselineMessenger(Target):
    """bench/baselines/fastapi_messenger.py: W5 only."""

    name = "baseline_messenger"
    workloads = frozenset({"W5"})

    def __init__(self) -> None:
        super().__init__()
        self.redis_port = 0
        self.db = Path(tempfile.gettempdir()) / f"bench-messenger-{os.getpid()}.sqlite3"

    def prepare(self) -> None:
        """redis-server must be installed (the design needs a Redis)."""
        if not shutil.which("redis-server"):
            raise TargetUnavailable("redis-server is not installed")

    def command(self, port: int) -> list[str]:
        """redis-server in the background, then exec uvicorn: Redis is uvicorn's child,
        so it is in the server's process tree (CPU, memory) and process group (stop).
        """
        redis = [
            "redis-server",
            "--port",
            str(self.redis_port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ]
        uvicorn = uvicorn_command(APP, port)
        return ["sh", "-c", f"{shlex.join(redis)} & exec {shlex.join(uvicorn)}"]

    def env(self) -> dict[str, str]:
        """Its Redis and a throw-away database."""
        return {
            "REDIS_URL": f"redis://{HOST}:{self.redis_port}/0",
            "BENCH_MESSENGER_DB": str(self.db),
        }

    def start(self, log_path: Path, cpus: set[int] | None = None, timeout=60.0):
        """A fresh Redis port; start; pin redis-server too (the shell may fork it
        before the base class pins the shell)."""
        self.redis_port = free_port()
        super().start(log_path, cpus=cpus, timeout=timeout)
        if cpus and self.proc:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                os.sched_setaffinity(child.pid, cpus)

    def messenger(self, n_users: int, n_directs: int, group_size: int) -> Messenger:
        """Conversations through the set-up endpoint; users are ids 1..n_users."""
        pairs, group = messenger_plan(n_users, n_directs, group_size)
        url = f"{self.base_http}/api/v1/messenger/conversations"

        def create(body: dict) -> str:
            return post_json(url, body)["id"]

        bodies = [
            {"kind": "direct", "member_ids": [a + 1, b + 1]} for a, b in pairs
        ] + [{"kind": "group", "title": "bench", "member_ids": [i + 1 for i in group]}]
        with ThreadPoolExecutor(4) as ex:
            ids = list(ex.map(create, bodies))
        ws = f"{self.base_ws}/api/v1/messenger/ws/"
        urls = [[f"{ws}{i + 1}"] * DEVICES_PER_USER for i in range(n_users)]
        devices = messenger_devices(urls, pairs, ids[:-1], group, ids[-1])
        return Messenger(devices, n_users, n_directs, group_size)

    def finish(self) -> None:
        """Delete the throw-away database."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)
