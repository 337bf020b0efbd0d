"""``manage.py realtime_status``: the operators' live view, in a terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand

from realtime.live import live_snapshot, load_sections


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys.extend(key for key in row if key not in keys)
    return keys


def render_text(snapshot: dict[str, Any]) -> str:
    """The snapshot as plain text: one block per part, one line per row."""
    lines = [f"{snapshot['total']} sockets open at {_time(snapshot['at'])} UTC", ""]
    lines.append("By endpoint")
    for endpoint, count in snapshot["by_endpoint"].items():
        lines.append(f"  {endpoint:<20} {count}")
    lines += ["", "Processes"]
    for report in snapshot["processes"]:
        state = "draining" if report["draining"] else "serving"
        counts = ", ".join(f"{k}={v}" for k, v in report["connections"].items())
        lines.append(
            f"  {report['process']:<28} {report['server']:<8} {state:<9} "
            f"{report['total']:>6}  {counts}"
        )
    for section in snapshot["sections"].values():
        lines += ["", section["title"]]
        rows = section["rows"]
        if not rows:
            lines.append("  none")
        keys = _columns(rows)
        for row in rows:
            lines.append("  " + "  ".join(f"{key}={row.get(key)}" for key in keys))
    lines += ["", "Recent closes and errors"]
    for event in snapshot["recent"]:
        lines.append(
            f"  {_time(event['at'])} {event['kind']:<5} {event['code']!s:<8} "
            f"{event['endpoint']:<12} {event['reason']} ({event['process']})"
        )
    if not snapshot["recent"]:
        lines.append("  none")
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = (
        "Print the live view: sockets by endpoint and process, live sessions, "
        "conversations, camera streams, recent closes and errors (every process "
        "sharing the cache)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        load_sections()
        snapshot = live_snapshot()
        if options["json"]:
            self.stdout.write(json.dumps(snapshot, indent=2, sort_keys=True))
        else:
            self.stdout.write(render_text(snapshot), ending="")
