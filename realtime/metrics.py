"""Process-local counters, exposed in Prometheus text format at ``/metrics``."""

from __future__ import annotations

from collections import Counter

connections_open: Counter[str] = Counter()  # by endpoint
connections_total: Counter[str] = Counter()  # by endpoint
closes: Counter[int] = Counter()  # by close code the server sent
errors: Counter[str] = Counter()  # by error code sent to clients
frames_in: Counter[str] = Counter()  # by endpoint
broadcast_writes: Counter[str] = Counter()  # by path: prepared (direct) or asgi


def render() -> str:
    """The counters as Prometheus text exposition (version 0.0.4)."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, values: Counter, label: str):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for key, value in sorted(values.items(), key=lambda item: str(item[0])):
            lines.append(f'{name}{{{label}="{key}"}} {value}')

    family(
        "realtime_connections_open",
        "gauge",
        "Open sockets.",
        connections_open,
        "endpoint",
    )
    family(
        "realtime_connections_total",
        "counter",
        "Sockets accepted.",
        connections_total,
        "endpoint",
    )
    family(
        "realtime_frames_in_total", "counter", "Client frames.", frames_in, "endpoint"
    )
    family(
        "realtime_broadcast_writes_total",
        "counter",
        "Broadcast frames to sockets by path: prepared (framed once) or asgi; "
        "queued counts those held for a client that is behind, written later.",
        broadcast_writes,
        "path",
    )
    family("realtime_errors_total", "counter", "Error frames sent.", errors, "code")
    family("realtime_closes_total", "counter", "Closes sent by code.", closes, "code")
    return "\n".join(lines) + "\n"
