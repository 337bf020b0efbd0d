"""Server-initiated heartbeat (docs/protocol.md §4).

Every ``interval`` seconds the server sends ``ping {"nonce"}`` and waits ``timeout``
seconds for the matching ``pong`` or any other valid frame; after ``max_missed``
consecutive misses it gives up and the connection is closed with 4003. Each answered
beat also refreshes the connection's presence, so a crashed server's connections
vanish once their presence TTL runs out.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from django.conf import settings

logger = logging.getLogger("realtime.heartbeat")


def heartbeat_settings() -> dict[str, float]:
    """Heartbeat times, read when a connection starts (tests override them)."""
    return {
        "interval": float(settings.HEARTBEAT_INTERVAL),
        "timeout": float(settings.PONG_TIMEOUT),
        "max_missed": int(settings.MAX_MISSED_PONGS),
    }


class Heartbeat:
    """One connection's heartbeat; ``run()`` is a task owned by the connection."""

    def __init__(
        self,
        *,
        send_ping: Callable[[str], Awaitable[None]],
        on_dead: Callable[[], Awaitable[None]],
        on_beat: Callable[[], Awaitable[None] | None] | None = None,
        interval: float,
        timeout: float,
        max_missed: int,
    ) -> None:
        self.send_ping = send_ping
        self.on_dead = on_dead
        self.on_beat = on_beat
        self.interval = interval
        self.timeout = timeout
        self.max_missed = max_missed
        self.missed = 0
        self._nonce: str | None = None
        self._life = asyncio.Event()

    def alive(self) -> None:
        """Any valid frame from the client is a sign of life."""
        self._life.set()

    def pong(self, nonce: object) -> None:
        if nonce is not None and nonce == self._nonce:
            self._life.set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._life.clear()
            self._nonce = secrets.token_hex(8)
            await self.send_ping(self._nonce)
            try:
                await asyncio.wait_for(self._life.wait(), self.timeout)
            except TimeoutError:
                self.missed += 1
                if self.missed >= self.max_missed:
                    await self.on_dead()
                    return
                continue
            self.missed = 0
            if self.on_beat is not None:
                try:
                    result = self.on_beat()
                    if result is not None:
                        await result
                except Exception:  # a Redis blip must not stop the heartbeat
                    logger.warning("heartbeat refresh failed", exc_info=True)
