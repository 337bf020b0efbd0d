"""The operators' live view: every process's own report, and the endpoints' sections.

Each server process writes a report of itself (its sockets by endpoint, whether it
is draining, its recent closes and errors) into the shared presence store every
``LIVE_REPORT_INTERVAL`` seconds, with a TTL of a few intervals: Redis when the
processes share one, this process's memory otherwise. A process that dies drops out
of the view once its report expires. Endpoints add sections of their own (live
sessions, conversations, camera streams) through ``register_section``; the admin
page and ``manage.py realtime_status`` both show ``live_snapshot()``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from realtime import clock, conf, recent
from realtime.connection import connections, open_consumers
from realtime.presence import get_store

logger = logging.getLogger("realtime.live")

PROCESSES = "_processes"  # the presence room of the processes' reports
# Reports live three intervals: one late report (a busy loop, a Redis blip) does
# not make a process vanish from the view, a dead one is gone within seconds.
TTL_INTERVALS = 3
RECENT_SHOWN = 30  # newest closes and errors across every process

_started_at = clock.now()
_server = "asgi"


@dataclass(frozen=True)
class Section:
    """Rows an endpoint shows in the live view, read when the view is."""

    name: str
    title: str
    rows: Callable[[], list[dict[str, Any]]]


_sections: dict[str, Section] = {}


def register_section(
    name: str, *, title: str, rows: Callable[[], list[dict[str, Any]]]
) -> None:
    """Add (or replace) a section: ``rows()`` returns plain, JSON-ready dicts."""
    _sections[name] = Section(name=name, title=title, rows=rows)


def load_sections() -> None:
    """Import the project's URL map, as Django's checks do: the project registers
    its endpoints' sections where it wires the live page, which a management
    command does not otherwise load."""
    importlib.import_module(settings.ROOT_URLCONF)


# ---------------------------------------------------------------------- this process
def process_id() -> str:
    """``host:pid``: unique among the processes that share a store."""
    return f"{socket.gethostname()}:{os.getpid()}"


def set_server(name: str) -> None:
    """Which server runs this process (``daphne``, ``uvicorn``), for the report."""
    global _server
    _server = name


def open_by_endpoint() -> dict[str, int]:
    """This process's admitted, open sockets by endpoint."""
    counts = Counter(
        c.endpoint for c in list(open_consumers) if c.started and not c.closing
    )
    return dict(sorted(counts.items()))


def process_report() -> dict[str, Any]:
    """What this process tells the others about itself."""
    by_endpoint = open_by_endpoint()
    return {
        "process": process_id(),
        "pid": os.getpid(),
        "server": _server,
        "started_at": round(_started_at, 3),
        "reported_at": round(clock.now(), 3),
        "draining": connections.draining,
        "connections": by_endpoint,
        "total": sum(by_endpoint.values()),
        "recent": recent.recent_events(),
    }


def report_ttl() -> float:
    return TTL_INTERVALS * float(conf.get("LIVE_REPORT_INTERVAL"))


def report_remove() -> None:
    """Leave the view at once (a process that is exiting)."""
    get_store().remove(PROCESSES, process_id())


async def areport_now() -> None:
    """Write this process's report to the shared store (a fresh TTL), from the
    event loop (Redis through its asyncio client)."""
    await get_store().aset_many(
        process_id(), {PROCESSES: process_report()}, report_ttl()
    )


async def report_forever() -> None:
    """The per-process reporter: a report now, then every interval until cancelled.

    The store's calls are the presence store's (the heartbeat makes the same ones
    from the loop); a failing write is logged and tried again next time.
    """
    while True:
        try:
            await areport_now()
        except Exception:  # Redis down: the next report tries again
            logger.exception("live report failed")
        await asyncio.sleep(float(conf.get("LIVE_REPORT_INTERVAL")))


# ---------------------------------------------------------------------- the view
def processes() -> list[dict[str, Any]]:
    """Every reporting process, this one read fresh when it has sockets."""
    reports = get_store().members(PROCESSES)
    own = process_id()
    if own in reports or open_by_endpoint():
        reports[own] = process_report()
    return [reports[key] for key in sorted(reports)]


def live_snapshot() -> dict[str, Any]:
    """The live view: processes, connections by endpoint, sections, recent events."""
    reports = processes()
    by_endpoint: Counter[str] = Counter()
    events: list[dict[str, Any]] = []
    for report in reports:
        by_endpoint.update(report.get("connections", {}))
        events.extend(
            {**event, "process": report["process"]}
            for event in report.get("recent", [])
        )
    events.sort(key=lambda event: event["at"], reverse=True)
    sections = {}
    for section in _sections.values():
        try:
            rows = section.rows()
        except Exception:  # one broken section must not hide the rest
            logger.exception("live section %s failed", section.name)
            rows = []
        sections[section.name] = {"title": section.title, "rows": rows}
    return {
        "at": round(clock.now(), 3),
        "total": sum(by_endpoint.values()),
        "by_endpoint": dict(sorted(by_endpoint.items())),
        "processes": [
            {key: value for key, value in report.items() if key != "recent"}
            for report in reports
        ],
        "sections": sections,
        "recent": events[:RECENT_SHOWN],
    }
