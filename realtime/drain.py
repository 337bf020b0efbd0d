"""Graceful stop: refuse new sockets, close this process's own 4012 over a window.

On SIGTERM (``manage.py serve`` calls ``drain_and_stop``) the process at once closes
every new socket 4013 and answers ``/readyz`` 503, so a load balancer moves new
clients elsewhere; its open sockets are closed 4012 one by one over
``DRAIN_WINDOW`` seconds, each at a random point of its own slice of the window, so
that their clients' reconnects reach the other processes as a trickle rather than a
storm; then the sockets' disconnect handlers (presence, groups, ``on_disconnect``)
get until ``DRAIN_DEADLINE`` seconds after the signal to finish, and the server is
stopped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from realtime import clock, conf, recent
from realtime.connection import connections, open_consumers
from realtime.protocol import CloseCode

logger = logging.getLogger("realtime.drain")

Sleep = Callable[[float], Awaitable[None]]
# How often the wait for the last disconnects looks again: fine enough that a
# process exits soon after its last socket, coarse enough to cost nothing.
POLL = 0.05


@dataclass(frozen=True)
class DrainResult:
    """What a drain did: sockets it closed, those still open at the deadline."""

    closed: int
    left: int
    seconds: float


def is_draining() -> bool:
    """The process is stopping: new sockets get 4013, ``/readyz`` 503."""
    return connections.draining


def drain_times() -> tuple[float, float]:
    """``(window, deadline)`` from the knobs; the deadline is never before the end
    of the window."""
    window = float(conf.get("DRAIN_WINDOW"))
    return window, max(float(conf.get("DRAIN_DEADLINE")), window)


def drain_schedule(
    *, count: int, window: float, rng: Callable[[], float] = random.random
) -> list[float]:
    """Seconds after the start at which to close each of ``count`` sockets.

    The window is cut into ``count`` equal slices and each socket closes at a random
    point of its own slice: evenly spread overall (no two bunch up as a uniform
    draw over the whole window would let them), yet never on a fixed beat that
    every process shares. Ascending, each in ``[0, window)``.
    """
    if count <= 0:
        return []
    if window <= 0:
        return [0.0] * count
    slot = window / count
    return [(index + rng()) * slot for index in range(count)]


def _open_sockets() -> list[Any]:
    return [c for c in list(open_consumers) if c.started and not c.closing]


def _close(consumer: Any) -> asyncio.Task:
    """The close as a task of its own, recorded now (its slot's time)."""
    recent.record_close(consumer, CloseCode.GOING_AWAY, "draining")
    return asyncio.ensure_future(_closing(consumer))


async def _closing(consumer: Any) -> None:
    if consumer.closing or not consumer.started:
        return
    try:
        await consumer.close_with(CloseCode.GOING_AWAY)
    except Exception:  # one socket's failure must not stop the drain of the rest
        logger.exception("drain close failed conn=%s", consumer.conn_id)


async def drain(
    *,
    window: float | None = None,
    deadline: float | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: Callable[[], float] = random.random,
) -> DrainResult:
    """Stop admitting, close every open socket 4012 spread over ``window``, then wait
    up to ``deadline`` (from the call) for their disconnects to finish.

    ``window`` and ``deadline`` default to the knobs. Closes run as tasks of their
    own: under uvicorn a close waits while the client does not read, and one stuck
    client must not hold up the others' slots.
    """
    default_window, default_deadline = drain_times()
    window = default_window if window is None else window
    deadline = max(default_deadline if deadline is None else deadline, window)
    connections.draining = True
    start = clock.monotonic()
    sockets = _open_sockets()
    logger.info("draining %d sockets over %g s", len(sockets), window)
    closing: set[asyncio.Task] = set()
    schedule = drain_schedule(count=len(sockets), window=window, rng=rng)
    for consumer, offset in zip(sockets, schedule, strict=True):
        wait = start + offset - clock.monotonic()
        if wait > 0:
            await sleep(wait)
        closing.add(_close(consumer))
    # Sockets that were mid-handshake when the drain began were admitted before
    # the flag was set: they go at the end of the window.
    late: list[Any] = []
    if any(c not in sockets for c in _open_sockets()):
        wait = start + window - clock.monotonic()
        if wait > 0:
            await sleep(wait)
        late = [c for c in _open_sockets() if c not in sockets]
        closing.update(_close(c) for c in late)
    while clock.monotonic() - start < deadline and (
        open_consumers or any(not task.done() for task in closing)
    ):
        await sleep(min(POLL, max(deadline - (clock.monotonic() - start), 0.0)))
    for task in closing:
        task.cancel()
    result = DrainResult(
        closed=len(sockets) + len(late),
        left=len(open_consumers),
        seconds=round(clock.monotonic() - start, 3),
    )
    logger.info(
        "drained: %d closed, %d left after %g s",
        result.closed,
        result.left,
        result.seconds,
    )
    return result


class Drainer:
    """A server's SIGTERM handling: the first signal drains then calls ``stop``;
    a second one (an impatient operator) calls ``stop`` at once."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self.task: asyncio.Task | None = None
        self.result: DrainResult | None = None

    def signalled(self) -> None:
        """On the server's event loop, when SIGTERM (or SIGINT) arrives."""
        if self.task is not None:
            logger.warning("second stop signal: stopping without waiting")
            self.stop()
            return
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            self.result = await drain()
        except Exception:  # the stop must happen whatever the drain ran into
            logger.exception("drain failed")
        finally:
            self.stop()
