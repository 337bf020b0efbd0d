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
from collections.abc import Awaitable, Callable, Coroutine

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
    """One connection's heartbeat, driven by event-loop timers.

    No task sleeps per connection: between beats a connection holds one timer handle,
    and a task exists only while a ``ping`` is being written or ``on_beat``/``on_dead``
    runs (``spawn`` owns them, so they are cancelled with the connection).
    """

    def __init__(
        self,
        *,
        send_ping: Callable[[str], Awaitable[None]],
        on_dead: Callable[[], Awaitable[None]],
        on_beat: Callable[[], Awaitable[None] | None] | None = None,
        interval: float,
        timeout: float,
        max_missed: int,
        spawn: Callable[[Coroutine], object],
    ) -> None:
        self.send_ping = send_ping
        self.on_dead = on_dead
        self.on_beat = on_beat
        self.interval = interval
        self.timeout = timeout
        self.max_missed = max_missed
        self.spawn = spawn  # the connection's: its tasks go with it
        self.missed = 0
        self._nonce: str | None = None
        self._waiting = False  # a ping is out and not answered yet
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._schedule(self.interval, self._beat)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def alive(self) -> None:
        """Any valid frame from the client is a sign of life."""
        if self._waiting:
            self._answered()

    def pong(self, nonce: object) -> None:
        if self._waiting and nonce is not None and nonce == self._nonce:
            self._answered()

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _beat(self) -> None:
        self._waiting = True
        self._nonce = secrets.token_hex(8)
        self.spawn(self.send_ping(self._nonce))
        self._schedule(self.timeout, self._unanswered)

    def _answered(self) -> None:
        self._waiting = False
        self.missed = 0
        self.stop()
        if self.on_beat is not None:
            self.spawn(self._refresh())
        self._schedule(self.interval, self._beat)

    def _unanswered(self) -> None:
        self._waiting = False
        self.missed += 1
        if self.missed >= self.max_missed:
            self._timer = None
            self.spawn(self.on_dead())
            return
        self._schedule(self.interval, self._beat)

    async def _refresh(self) -> None:
        try:
            result = self.on_beat()
            if result is not None:
                await result
        except Exception:  # a Redis blip must not stop the heartbeat
            logger.warning("heartbeat refresh failed", exc_info=True)
