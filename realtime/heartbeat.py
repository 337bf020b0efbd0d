"""Server-initiated heartbeat (docs/protocol.md §4).

Every ``interval`` seconds the server sends ``ping {"nonce"}`` and waits ``timeout``
seconds for the matching ``pong`` or any other valid frame; after ``max_missed``
consecutive misses it gives up and the connection is closed with 4003. Each answered
beat also refreshes the connection's presence, so a crashed server's connections
vanish once their presence TTL runs out.

The beats of one process run on a wheel: deadlines rounded up to a
``HEARTBEAT_TICK``, one timer for all of them. Beats that fall within a tick go out in
one turn of the event loop (their pings written together, their pongs read in a
burst) instead of each waking the loop on its own, which is most of what 10,000 idle
sockets cost.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Coroutine

from django.conf import settings

from realtime.looplocal import per_loop

logger = logging.getLogger("realtime.heartbeat")

# Beats one turn of the event loop runs at most; the rest run in the next turns.
BEATS_PER_TURN = 500


def heartbeat_settings() -> dict[str, float]:
    """Heartbeat times, read when a connection starts (tests override them), as the
    copilot's ``connected`` frame tells them (the wheel's tick is the server's own)."""
    return {
        "interval": float(settings.HEARTBEAT_INTERVAL),
        "timeout": float(settings.PONG_TIMEOUT),
        "max_missed": int(settings.MAX_MISSED_PONGS),
    }


class Wheel:
    """Every heartbeat of one event loop, due at the end of a tick: one timer for all
    (and every other ``OnWheel`` entry, a ``Deadline``, run the same way).

    A heartbeat waits in the bucket of the tick its deadline falls in (at most one
    bucket at a time); the wheel's timer is armed for the earliest bucket, and firing
    it runs the buckets then due, in order, at most ``BEATS_PER_TURN`` beats per turn
    of the loop (sockets that connected in the same second share a bucket for good:
    a reconnect storm's must not hold the loop in one go). A beat is late by less
    than a tick when the loop keeps up. Each beat runs in its connection's context
    (its log fields), as its own timer did.
    """

    def __init__(self) -> None:
        self.buckets: dict[float, dict[OnWheel, None]] = {}
        # An empty wheel holds no timer: a timer holds its loop, which holds this
        # wheel (``per_loop``), and a test's closed loop must be collectable.
        self.timer: asyncio.TimerHandle | None = None
        self.armed_at = math.inf

    def put(self, beat: OnWheel, delay: float, tick: float) -> float:
        """Make ``beat`` due ``delay`` seconds from now, rounded up to ``tick``;
        returns the bucket's key, for ``take``."""
        loop = asyncio.get_running_loop()
        at = math.ceil((loop.time() + delay) / tick) * tick
        self.buckets.setdefault(at, {})[beat] = None
        if at < self.armed_at:
            self._arm(loop, at)
        return at

    def take(self, beat: OnWheel, at: float) -> None:
        bucket = self.buckets.get(at)
        if bucket is None:
            return
        bucket.pop(beat, None)
        if not bucket:
            del self.buckets[at]
            if not self.buckets:
                self._disarm()

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self.buckets.values())

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.armed_at = at
        # A context of its own: not that of the connection that armed it.
        self.timer = loop.call_at(at, self._fire, context=contextvars.Context())

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.armed_at = None, math.inf

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        # asyncio fires a timer up to its clock resolution early: the bucket it was
        # armed for is due whatever the clock says.
        limit = max(self.armed_at, loop.time())
        self.timer, self.armed_at = None, math.inf
        budget = BEATS_PER_TURN
        try:
            for at in sorted(at for at in self.buckets if at <= limit):
                bucket = self.buckets.get(at)  # gone if a beat run stopped its last
                while bucket and budget:
                    beat, _ = bucket.popitem()
                    budget -= 1
                    try:
                        beat.context.run(beat.due)
                    except Exception:  # one socket's failure is not every socket's
                        logger.exception("heartbeat failed")
                if bucket:
                    break  # the rest in the next turn
                self.buckets.pop(at, None)
        finally:
            # Re-armed for the earliest bucket: now if one is left over; before the
            # later bucket a beat just run may have armed the timer for.
            if self.buckets and (earliest := min(self.buckets)) < self.armed_at:
                self._arm(loop, earliest)


wheel = per_loop(Wheel)


class OnWheel:
    """What waits on the wheel: its ``due`` (each kind has its own) is called, in
    ``context``, at the end of the tick its deadline falls in (``tick``: this
    entry's), unless ``stop`` took it off first. One deadline at a time; waiting
    again moves it."""

    __slots__ = ("tick", "context", "_wheel", "_at")

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.context: contextvars.Context | None = None  # set by whoever starts it
        self._wheel: Wheel | None = None
        self._at: float | None = None  # the wheel bucket this entry waits in

    def _wait(self, delay: float) -> None:
        if self._wheel is None:
            self._wheel = wheel()
        self._at = self._wheel.put(self, delay, self.tick)

    def stop(self) -> None:
        if self._at is not None and self._wheel is not None:
            self._wheel.take(self, self._at)
        self._at = None


class Deadline(OnWheel):
    """One call at a time on the wheel, e.g. a credential's expiry: no timer of its
    own (one per socket was ~0.6 KB of it and a timer to arm and cancel), late by
    less than ``tick``. ``start`` again moves it."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None], *, tick: float = 1.0) -> None:
        super().__init__(tick)
        self.callback = callback

    def start(self, delay: float) -> None:
        """Call ``callback`` ``delay`` seconds from now, in the caller's context."""
        self.stop()
        self.context = contextvars.copy_context()
        self._wait(delay)

    def due(self) -> None:
        """The wheel's call."""
        self._at = None
        self.callback()


class Heartbeat(OnWheel):
    """One connection's heartbeat, on its process's wheel.

    No task sleeps per connection and no timer is made per beat: between beats a
    connection sits in one of the wheel's buckets. ``send_ping`` writes the ping
    itself when it can (returning None) or returns a coroutine that does;
    ``on_beat`` is called at once on each answer and may return a coroutine
    function to run. A task exists only for such a coroutine and ``on_dead``
    (``spawn`` owns them, so they are cancelled with the connection).
    """

    def __init__(
        self,
        *,
        send_ping: Callable[[str], Coroutine | None],
        on_dead: Callable[[], Awaitable[None]],
        on_beat: Callable[[], Callable[[], Awaitable[None]] | None] | None = None,
        interval: float,
        timeout: float,
        max_missed: int,
        spawn: Callable[[Coroutine], object],
        tick: float = 1.0,
    ) -> None:
        self.send_ping = send_ping
        self.on_dead = on_dead
        self.on_beat = on_beat
        self.interval = interval
        self.timeout = timeout
        self.max_missed = max_missed
        self.spawn = spawn  # the connection's: its tasks go with it
        # Short test intervals get a finer tick: a beat stays within a quarter late.
        super().__init__(min(tick, interval / 4, timeout / 4))
        self.missed = 0
        self._nonce: str | None = None
        self._waiting = False  # a ping is out and not answered yet

    def start(self) -> None:
        self.context = contextvars.copy_context()  # the wheel runs its beats in it
        self._wait(self.interval)

    def alive(self) -> None:
        """Any valid frame from the client is a sign of life."""
        if self._waiting:
            self._answered()

    def pong(self, nonce: object) -> None:
        if self._waiting and nonce is not None and nonce == self._nonce:
            self._answered()

    def due(self) -> None:
        """The wheel's call: time to ping, or the ping went unanswered."""
        self._at = None
        if self._waiting:
            self._unanswered()
        else:
            self._beat()

    def _beat(self) -> None:
        self._waiting = True
        self._nonce = secrets.token_hex(8)
        self._wait(self.timeout)
        sending = self.send_ping(self._nonce)
        if sending is not None:
            self.spawn(sending)

    def _answered(self) -> None:
        self._waiting = False
        self.missed = 0
        self.stop()
        if self.on_beat is not None:
            self._refresh()
        self._wait(self.interval)

    def _unanswered(self) -> None:
        self._waiting = False
        self.missed += 1
        if self.missed >= self.max_missed:
            self.spawn(self.on_dead())
            return
        self._wait(self.interval)

    def _refresh(self) -> None:
        """``on_beat``, called at once; what it returns to await later (a coroutine
        function: nothing is made that a cancelled task would leave unawaited) runs
        in a task."""
        assert self.on_beat is not None
        try:
            later = self.on_beat()
        except Exception:  # a Redis blip must not stop the heartbeat
            logger.warning("heartbeat refresh failed", exc_info=True)
            return
        if later is not None:
            self.spawn(self._finish(later))

    async def _finish(self, later: Callable[[], Awaitable[None]]) -> None:
        try:
            await later()
        except Exception:
            logger.warning("heartbeat refresh failed", exc_info=True)
