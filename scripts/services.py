"""The machine's side of a cluster: free ports, Redis and PostgreSQL started if they
are not running (the commands ``.ci/run`` uses), and the process helpers the cluster
and the fault tests share.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

HOST = "127.0.0.1"


class ClusterError(RuntimeError):
    """Something the cluster needs did not start; the message says what."""


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


# ---------------------------------------------------------------- Redis Cluster
def start_redis_server(workdir: Path, port: int, *extra: str) -> subprocess.Popen:
    """A ``redis-server`` of our own on ``port`` (no persistence), in the
    foreground so that its PID is ours to stop; ready when this returns."""
    if shutil.which("redis-server") is None:
        raise ClusterError(
            "redis-server is not installed (apt-get install redis-server)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(  # noqa: S603
        ["redis-server", "--bind", HOST, "--port", str(port)]  # noqa: S607
        + ["--save", "", "--appendonly", "no", "--dir", str(workdir), *extra],
        stdout=(workdir / f"redis-{port}.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: port_open(HOST, port), timeout=10, what=f"Redis on {port}")
    except ClusterError:
        stop_process(process)
        raise
    return process


def _redis_cli(port: int, *args: str, timeout: float = 10) -> str:
    result = subprocess.run(  # noqa: S603
        ["redis-cli", "-h", HOST, "-p", str(port), *args],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        # redis-cli --cluster prints its [ERR] lines on stdout.
        said = (result.stderr.strip() + "\n" + result.stdout.strip()[-1500:]).strip()
        raise ClusterError(f"redis-cli {' '.join(args)}: {said}")
    return result.stdout


class RedisClusterProcesses:
    """A local Redis Cluster: ``nodes`` masters, each with ``replicas`` replicas,
    on free loopback ports, each a ``redis-server`` process of ours; ``url`` is its
    ``redis+cluster://`` address. ``kill(i)``/``start_node(i)`` take one node
    away and bring it back on the same port with the same slots (its
    ``nodes-<port>.conf`` stays in ``workdir``); with replicas, a killed master's
    replica takes its slots over after ``node_timeout_ms`` and a little more."""

    def __init__(
        self,
        workdir: Path,
        nodes: int = 3,
        *,
        replicas: int = 0,
        node_timeout_ms: int = 2000,
    ) -> None:
        self.workdir = Path(workdir)
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        count = nodes * (1 + replicas)
        # The cluster bus: by default port + 10000, which a free port may not have.
        # Each port different: two free_port() calls may name the same one.
        ports: list[int] = []
        while len(ports) < 2 * count:
            port = free_port()
            if port not in ports:
                ports.append(port)
        self.ports, self.bus_ports = ports[:count], ports[count:]
        self.processes: list[subprocess.Popen | None] = [None] * count

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.ports[0]}"

    def start_node(self, index: int) -> None:
        port = self.ports[index]
        self.processes[index] = start_redis_server(
            self.workdir,
            port,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.workdir / f"nodes-{port}.conf"),
            "--cluster-port",
            str(self.bus_ports[index]),
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
        )

    def start(self, *, timeout: float = 30) -> RedisClusterProcesses:
        if shutil.which("redis-cli") is None:
            raise ClusterError("redis-cli is not installed (apt-get install redis)")
        try:
            for index in range(len(self.ports)):
                self.start_node(index)
            _redis_cli(
                self.ports[0],
                "--cluster",
                "create",
                *(f"{HOST}:{port}" for port in self.ports),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
                timeout=timeout,
            )
            self.wait_ok(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def running(self) -> list[int]:
        """The ports of the nodes whose process runs."""
        return [
            port
            for port, process in zip(self.ports, self.processes, strict=True)
            if process is not None and process.poll() is None
        ]

    def state_ok(self) -> bool:
        """Every running node answers and says ``cluster_state:ok``; with
        replicas, every replica's link to its master is up too."""
        try:
            for port in self.running():
                if "cluster_state:ok" not in _redis_cli(
                    port, "cluster", "info", timeout=2
                ):
                    return False
                if self.replicas:
                    info = _redis_cli(port, "info", "replication", timeout=2)
                    if "role:slave" in info and "master_link_status:up" not in info:
                        return False
            return True
        except (ClusterError, subprocess.TimeoutExpired):
            return False

    def wait_ok(self, *, timeout: float = 30) -> None:
        wait_for(self.state_ok, timeout=timeout, what="Redis Cluster")

    def kill(self, index: int) -> None:
        """``kill -9`` of one node's process."""
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p is not None and p.poll() is None]

    def stop(self) -> None:
        for process in self.processes:
            if process is not None:
                stop_process(process, grace=5)
