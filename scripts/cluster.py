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
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SERVERS = ("daphne", "uvicorn")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/realtime_cluster"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Variables of the caller that must not leak into the servers: coverage would slow
# every process down, and the cluster sets the service URLs itself.
DROPPED_ENV = frozenset({"REDIS_URL", "DATABASE_URL", "COVERAGE_PROCESS_START"})


class ClusterError(RuntimeError):
    """Something the cluster needs did not start; the message says what."""


# ---------------------------------------------------------------- small helpers
def free_port() -> int:
    """A TCP port nobody listens on right now, on loopback."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def wait_for(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``check`` every 0.1 s until it is true; ``ClusterError`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not ready after {timeout:g} s")
        time.sleep(0.1)


def raise_file_limit(wanted: int = 65536) -> int:
    """Lift this process's open-file limit (inherited by what it starts) towards
    ``wanted``, never past the hard limit; returns the new soft limit. Each socket
    is a file descriptor, HAProxy holds two per proxied connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def stop_process(process: subprocess.Popen, *, grace: float = 10) -> None:
    """SIGTERM by PID, then SIGKILL if it has not exited after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def http_status(url: str, *, timeout: float = 1) -> int | None:
    """The status a GET of ``url`` answers, ``None`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


# ---------------------------------------------------------------- services
def ensure_redis(url: str, *, workdir: Path) -> subprocess.Popen | None:
    """Start Redis for ``url`` unless it answers; the started process, or ``None``
    when one was already there (and is not ours to stop)."""
    parts = urlsplit(url)
    host, port = parts.hostname or HOST, parts.port or 6379
    if port_open(host, port):
        return None
    if shutil.which("redis-server") is None:
        raise ClusterError(
            "redis-server is not installed (apt-get install redis-server)"
        )
    # .ci/run's command, in the foreground so that its PID is ours to stop.
    process = subprocess.Popen(  # noqa: S603
        ["redis-server", "--bind", host, "--port", str(port)]  # noqa: S607
        + ["--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=(workdir / "redis.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(lambda: port_open(host, port), timeout=10, what="Redis")
    return process


def postgres_pid(version: str) -> int | None:
    """The postmaster's PID of Debian's ``<version>/main`` cluster, if it runs."""
    pid_file = Path(f"/var/lib/postgresql/{version}/main/postmaster.pid")
    try:
        return int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def ensure_postgres(url: str) -> list[int]:
    """Start Debian's PostgreSQL clusters unless ``url``'s server answers (as
    ``.ci/run`` does); the postmaster PIDs this started (empty: none)."""
    parts = urlsplit(url)
    host, port = parts.hostname or HOST, parts.port or 5432
    if port_open(host, port):
        return []
    versions = (
        sorted(os.listdir("/etc/postgresql"))
        if Path("/etc/postgresql").is_dir()
        else []
    )
    if not versions or shutil.which("pg_ctlcluster") is None:
        raise ClusterError("PostgreSQL is not installed (apt-get install postgresql)")
    started = []
    for version in versions:
        subprocess.run(  # noqa: S603
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],  # noqa: S607
            capture_output=True,
            timeout=60,
            check=False,
        )
        pid = postgres_pid(version)
        if pid is not None:
            started.append(pid)
    wait_for(lambda: port_open(host, port), timeout=20, what="PostgreSQL")
    return started


def ensure_database(url: str) -> bool:
    """Create ``url``'s database unless it exists; whether it was created."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return not exists


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
            "--backlog",
            "2048",
        ]
    if server == "daphne":
        return [str(BIN / "daphne"), "-b", HOST, "-p", str(port)] + [
            "config.asgi:application"
        ]
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


def haproxy_config(*, port: int, servers: Mapping[str, int], maxconn: int) -> str:
    """HAProxy in front of ``servers`` (name → port) on ``port``.

    HTTP mode passes WebSocket upgrades through as tunnels; ``timeout tunnel`` is
    what an open socket gets (an hour: the application's heartbeat, not the balancer,
    decides when a quiet socket is dead). Health checks ask ``/readyz`` every second
    and take a server out after two failures, so a killed process stops getting new
    clients within ~2 s; until then ``redispatch`` retries a refused connection on
    another server.
    """
    lines = [
        "global",
        f"    maxconn {maxconn}",
        "defaults",
        "    mode http",
        f"    maxconn {maxconn}",
        "    option redispatch",
        "    retries 3",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout queue 30s",
        "    timeout tunnel 1h",
        "    timeout client-fin 5s",
        "    timeout server-fin 5s",
        "frontend realtime",
        f"    bind {HOST}:{port}",
        "    option forwardfor",
        "    default_backend servers",
        "backend servers",
        "    balance roundrobin",
        "    option httpchk",
        "    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost",
        "    http-check expect status 200",
        "    default-server inter 1s fall 2 rise 1",
    ]
    lines += [f"    server {name} {HOST}:{p} check" for name, p in servers.items()]
    return "\n".join(lines) + "\n"


class Balancer:
    """HAProxy in the foreground, its configuration in the cluster's directory."""

    def __init__(self, *, port: int, workdir: Path, maxconn: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        # Two descriptors per proxied connection (client and server side), and a
        # few for itself: HAProxy refuses to start with more than the limit allows.
        self.maxconn = maxconn or (raise_file_limit() - 100) // 2
        self.config_path = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, servers: Mapping[str, int]) -> None:
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise ClusterError("haproxy is not installed (apt-get install haproxy)")
        self.config_path.write_text(
            haproxy_config(port=self.port, servers=servers, maxconn=self.maxconn)
        )
        self.process = subprocess.Popen(  # noqa: S603
            [haproxy, "-db", "-f", str(self.config_path)],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._up, timeout=15, what="haproxy")

    def _up(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise ClusterError(f"haproxy exited:\n{self.log_path.read_text()[-2000:]}")
        return http_status(self.url("/healthz")) == 200

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        return f"ws://{HOST}:{self.port}{path}"


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
