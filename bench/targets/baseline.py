"""The seed's FastAPI manager under uvicorn (uvloop, httptools, websockets-sansio)."""

from __future__ import annotations

from .base import ISSUE_WORKLOADS, OpenTarget, uvicorn_command


class Baseline(OpenTarget):
    """bench/baselines/fastapi_manager.py: every workload."""

    name = "baseline"
    workloads = frozenset({"W1", "W2", "W3", "W4"}) | ISSUE_WORKLOADS

    def command(self, port: int) -> list[str]:
        """uvicorn, one process, no access log."""
        return uvicorn_command("bench.baselines.fastapi_manager:app", port)
