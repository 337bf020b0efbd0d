"""What a query run or a voice stream may use of the socket that owns it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from realtime.protocol import RealtimeError


class Owner(Protocol):
    """The owning connection, narrowed to sending, asking and spawning.

    ``runs`` and ``audio`` see the consumer only through this, so they import nothing
    of it and never change its state: whatever the consumer keeps about them (its
    running queries, its voice stream) it updates itself, from their callbacks.
    """

    @property
    def closing(self) -> bool:
        """True once the socket is closing or closed: frames would go nowhere."""
        ...

    async def send_frame(
        self, type: str, payload: dict, *, request_id: str | None = None
    ) -> None: ...

    async def send_error(
        self, error: RealtimeError, *, request_id: str | None = None
    ) -> None: ...

    async def request_client(
        self, type: str, payload: dict, *, expects: set[str]
    ) -> Any: ...

    def spawn(self, coro: Coroutine, request_id: str | None = None) -> asyncio.Task: ...
