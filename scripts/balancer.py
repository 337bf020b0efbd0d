"""The cluster's load balancer: HAProxy in front of the server processes, configured
for WebSockets (upgrades, long tunnel timeouts, ``/readyz`` checks, round robin).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from scripts.services import (
    HOST,
    ClusterError,
    free_port,
    http_status,
    raise_file_limit,
    stop_process,
    wait_for,
)


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
