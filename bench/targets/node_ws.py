"""A plain Node.js `ws` server: the single-event-loop ceiling."""

from __future__ import annotations

from pathlib import Path

from bench.node import (
    SERVER,
    NodeUnavailable,
    ensure_installed,
    node_binary,
    pin_threads,
)

from .base import HOST, ISSUE_WORKLOADS, OpenTarget, TargetUnavailable


class NodeWs(OpenTarget):
    """The seed baseline's subset on `ws`: the issue's workloads N1-N4 only."""

    name = "node_ws"
    workloads = ISSUE_WORKLOADS

    def prepare(self) -> None:
        """`npm ci` the pinned `ws` if it is not installed yet."""
        try:
            ensure_installed()
        except NodeUnavailable as exc:
            raise TargetUnavailable(str(exc)) from exc

    def command(self, port: int) -> list[str]:
        """node, one process, listening on the loopback port."""
        return [node_binary(), str(SERVER), "--host", HOST, "--port", str(port)]

    def start(
        self, log_path: Path, cpus: set[int] | None = None, timeout: float = 60.0
    ) -> None:
        """Start as any target, then pin the threads node made before it was pinned."""
        super().start(log_path, cpus=cpus, timeout=timeout)
        if cpus and self.proc:
            pin_threads(self.proc.pid, cpus)
