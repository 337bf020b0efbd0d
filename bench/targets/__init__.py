"""Servers the harness measures; each adapter is one small module (a Target)."""

from __future__ import annotations

import importlib

from .base import Target, TargetUnavailable

TARGETS = {
    "baseline": "bench.targets.baseline:Baseline",
    "baseline_messenger": "bench.targets.baseline_messenger:BaselineMessenger",
    "naive_channels": "bench.targets.naive_channels:NaiveChannels",
    "node_ws": "bench.targets.node_ws:NodeWs",
    "ours": "bench.targets.ours:Ours",
    "ours_uvicorn": "bench.targets.ours:OursUvicorn",
    "trivial": "bench.targets.trivial:Trivial",
}


def load(name: str) -> Target:
    """Instantiate the target registered as name."""
    if name not in TARGETS:
        raise TargetUnavailable(
            f"unknown target {name!r} (known: {', '.join(TARGETS)})"
        )
    module, cls = TARGETS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
