"""psutil readings: server memory; CPU of server, load generator and other processes."""

from __future__ import annotations

import os
import time

import psutil


def _tree(pid: int | None) -> set[int]:
    if not pid:
        return set()
    try:
        p = psutil.Process(pid)
        return {pid, *(c.pid for c in p.children(recursive=True))}
    except psutil.Error:
        return set()


def _cpu_by_pid() -> dict[int, float]:
    out = {}
    for p in psutil.process_iter(["cpu_times"]):
        t = p.info["cpu_times"]
        if t is not None:
            out[p.pid] = t.user + t.system
    return out


class ServerProbe:
    """Reads the server process tree; `phase()` starts CPU accounting."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def rss_mb(self) -> float:
        """Resident set size of the server tree in MiB."""
        total = 0
        for pid in _tree(self.pid):
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                pass
        return round(total / 1048576, 2)

    def phase(self) -> CpuPhase:
        """Start CPU accounting now."""
        return CpuPhase(self.pid)


class CpuPhase:
    """CPU % (100 = one core) of server, load generator, others; busy % per core."""

    def __init__(self, server_pid: int | None) -> None:
        self.server = _tree(server_pid)
        self.loadgen = _tree(os.getpid())
        self.t0 = time.monotonic()
        self.cores0 = psutil.cpu_times(percpu=True)
        self.cpu0 = _cpu_by_pid()

    def stop(self) -> dict:
        """Percentages since start (100 = one core busy for the whole phase)."""
        dt = max(1e-6, time.monotonic() - self.t0)
        cpu1 = _cpu_by_pid()
        groups = {"server": 0.0, "loadgen": 0.0, "other": 0.0}
        for pid, t in cpu1.items():
            d = t - self.cpu0.get(pid, 0.0)
            key = (
                "server"
                if pid in self.server
                else "loadgen"
                if pid in self.loadgen
                else "other"
            )
            groups[key] += max(0.0, d)
        busy = []
        for a, b in zip(self.cores0, psutil.cpu_times(percpu=True), strict=True):
            total = sum(b) - sum(a)
            idle = (b.idle + getattr(b, "iowait", 0)) - (
                a.idle + getattr(a, "iowait", 0)
            )
            busy.append(round(100 * (1 - idle / total), 1) if total > 0 else 0.0)
        return {
            "server_cpu_pct": round(100 * groups["server"] / dt, 1),
            "loadgen_cpu_pct": round(100 * groups["loadgen"] / dt, 1),
            "other_cpu_pct": round(100 * groups["other"] / dt, 1),
            "core_busy_pct": busy,
        }
