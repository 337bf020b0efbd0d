"""The naive Channels project (bench/naive_channels) under daphne, in-memory layer."""

from __future__ import annotations

from .base import HOST, PY, OpenTarget


class NaiveChannels(OpenTarget):
    """AsyncWebsocketConsumer + group_send: session chat and ping only (no camera)."""

    name = "naive_channels"
    workloads = frozenset({"W1", "W2", "W3"})

    def command(self, port: int) -> list[str]:
        """daphne, one process, no access log, listen backlog as large as uvicorn's."""
        endpoint = f"tcp:port={port}:interface={HOST}:backlog=2048"
        return [
            PY,
            "-m",
            "daphne",
            "-v",
            "0",
            "-e",
            endpoint,
            "bench.naive_channels.asgi:application",
        ]

    def env(self) -> dict[str, str]:
        """The project's own settings module."""
        return {"DJANGO_SETTINGS_MODULE": "bench.naive_channels.settings"}
