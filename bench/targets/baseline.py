"""The seed's FastAPI manager under uvicorn (uvloop, httptools, websockets-sansio)."""

from __future__ import annotations

from .base import HOST, PY, OpenTarget


class Baseline(OpenTarget):
    """bench/baselines/fastapi_manager.py: every workload."""

    name = "baseline"

    def command(self, port: int) -> list[str]:
        """uvicorn, one process, no access log."""
        app = "bench.baselines.fastapi_manager:app"
        return [
            PY,
            "-m",
            "uvicorn",
            app,
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
