"""``make cluster``: N server processes on Redis and PostgreSQL behind HAProxy.

Starts Redis and PostgreSQL if they are not running (the commands ``.ci/run`` uses),
creates the database if needed, migrates once, starts ``N`` daphne (or uvicorn)
processes on free loopback ports and HAProxy in front of them (WebSocket upgrades,
long tunnel timeouts, ``/readyz`` health checks, round robin), and prints the URLs.
Ctrl-C (or SIGTERM) stops what it started, each process by its PID, and leaves
running the services it found running. The fault tests (``tests/faults``) start the
same cluster through ``Cluster``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from realtime.listening import UVICORN_FLAGS, daphne_flags
from scripts.balancer import Balancer
from scripts.services import (
    HOST,
    ClusterError,
    ensure_database,
    ensure_postgres,
    ensure_redis,
    free_port,
    http_status,
    raise_file_limit,
    stop_process,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVERS = ("daphne", "uvicorn")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/realtime_cluster"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Variables of the caller that must not leak into the servers: coverage would slow
# every process down, and the cluster sets the service URLs itself.
DROPPED_ENV = frozenset({"REDIS_URL", "DATABASE_URL", "COVERAGE_PROCESS_START"})


# ---------------------------------------------------------------- processes


def server_command(server: str, port: int) -> list[str]:
    """The command of one server process on ``port``: daphne as ``make run`` starts
    it, uvicorn with docs/deployment.md's flags (and a backlog for reconnect storms)."""
    if server == "uvicorn":
        return [str(BIN / "uvicorn"), "config.asgi:application"] + [
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--ws-per-message-deflate",
            "false",
            *UVICORN_FLAGS,  # as manage.py serve (realtime.listening)
        ]
    if server == "daphne":
        # As manage.py serve: the backlog named, no pings of daphne's own.
        flags = daphne_flags(HOST, port)
        return [str(BIN / "daphne"), *flags, "config.asgi:application"]
    raise ClusterError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")


class ServerProcess:
    """One server process of the cluster, on its own loopback port."""

    def __init__(
        self, *, name: str, server: str, env: Mapping[str, str], workdir: Path
    ) -> None:
        self.name = name
        self.server = server
        self.env = dict(env)
        self.port = free_port()
        self.log_path = workdir / f"{name}-{server}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            server_command(self.server, self.port),
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        def up() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise ClusterError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            return http_status(self.url("/healthz")) == 200

        wait_for(up, timeout=timeout, what=self.name)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def kill(self) -> None:
        """``kill -9``: the process gets no chance to clean anything up."""
        if self.alive():
            self.process.kill()
            self.process.wait(5)

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        return f"ws://{HOST}:{self.port}{path}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


# ---------------------------------------------------------------- the cluster
class Cluster:
    """``with Cluster(servers=2) as cluster: cluster.balancer.ws_url("/ws/echo/")``.

    ``env`` is added to every server's environment (knobs such as
    ``PRESENCE_TTL``); ``balancer=False`` starts the servers only. Services and
    processes are stopped in ``stop`` only if this cluster started them.
    """

    def __init__(
        self,
        *,
        servers: int = 2,
        server: str = "daphne",
        port: int = 0,
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
        redis_url: str | None = None,
        workdir: Path | None = None,
        balancer: bool = True,
        demo: bool = False,
    ) -> None:
        if servers < 1:
            raise ClusterError("a cluster needs at least one server")
        server_command(server, 0)  # an unknown server fails here, before anything
        self.count = servers
        self.server = server
        self.database_url = database_url or DEFAULT_DATABASE_URL
        self.redis_url = redis_url or DEFAULT_REDIS_URL
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="cluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.demo = demo
        self.env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        self.env.setdefault("DEBUG", "1")
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
        )
        self.env.update(env or {})
        self.balancer = Balancer(port=port, workdir=self.workdir) if balancer else None
        self.servers: list[ServerProcess] = []
        self.started_redis: subprocess.Popen | None = None
        self.started_postgres: list[int] = []
        self.demo_output = ""

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        raise_file_limit()
        self.started_redis = ensure_redis(self.redis_url, workdir=self.workdir)
        self.started_postgres = ensure_postgres(self.database_url)
        ensure_database(self.database_url)
        self.manage("migrate", "--noinput")  # once, before any server runs
        if self.demo:
            self.demo_output = self.manage("demo_setup")
        self.servers = [
            ServerProcess(
                name=f"s{index + 1}",
                server=self.server,
                env=self.env,
                workdir=self.workdir,
            )
            for index in range(self.count)
        ]
        for process in self.servers:
            process.start()
        for process in self.servers:
            process.wait_ready()
        if self.balancer is not None:
            self.balancer.start({s.name: s.port for s in self.servers})

    def stop(self) -> None:
        """Stop, by PID, the balancer, the servers, then the services this started."""
        if self.balancer is not None:
            self.balancer.stop()
        for process in self.servers:
            process.stop()
        if self.started_redis is not None:
            stop_process(self.started_redis)
            self.started_redis = None
        for pid in self.started_postgres:
            try:
                os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
            except ProcessLookupError:
                pass
        self.started_postgres = []

    def manage(self, *args: str) -> str:
        """``manage.py <args>`` against the cluster's database and Redis."""
        result = subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def urls(self) -> list[tuple[str, str]]:
        """``(label, url)`` for the operator: the balancer, each server, the admin."""
        rows = []
        front = self.balancer.url() if self.balancer else self.servers[0].url()
        if self.balancer is not None:
            rows.append(("Balancer", front))
        rows += [(f"{s.name} ({s.server}, pid {s.pid})", s.url()) for s in self.servers]
        rows.append(("Admin", f"{front}admin/"))
        rows.append(("Sockets", front.replace("http://", "ws://") + "ws/..."))
        return rows


# ---------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--servers",
        type=int,
        default=int(os.environ.get("N") or 2),
        help="server processes (default: $N or 2)",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default=os.environ.get("CLUSTER_SERVER") or "daphne",
        help="ASGI server (default: $CLUSTER_SERVER or daphne)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="the balancer's port (default: $PORT or 8000)",
    )
    return parser.parse_args(argv)


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cluster = Cluster(
        servers=args.servers,
        server=args.server,
        port=args.port,
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        demo=True,
    )
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        cluster.start()
        print(cluster.demo_output, end="")
        print(f"\n  Logs         {cluster.workdir}")
        for label, url in cluster.urls():
            print(f"  {label:<28} {url}")
        print("\nCtrl-C stops the cluster.", flush=True)
        while True:
            for process in cluster.servers:
                if process.process is not None and process.process.returncode is None:
                    if process.process.poll() is not None:
                        print(f"{process.name} exited ({process.process.returncode})")
            time.sleep(1)
    except _Stop as stop:
        print(f"\n{stop}: stopping", flush=True)
        return 0
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # leave half the cluster up
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
