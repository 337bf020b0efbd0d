"""One socket's seq-ordered streams: the outbox's half that delivers stored frames
in seq order, once, per stream (``realtime.ordering.SeqOrder``).

A stream is ordered from ``last`` on (``order``), or held while the socket reads
and replays (``hold``); a seq that does not arrive within the stream's wait is read
back from storage through the endpoint's ``fill`` hook, one read at a time, and what
a read releases is written in release order before anything still queued.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from realtime.ordering import SeqOrder

logger = logging.getLogger("realtime.outbox")


class OrderedStreams:
    """Mixed into ``Outbox`` (its slots hold the state: ``orders``, ``holding``,
    ``filling``, ``gap_timer``)."""

    __slots__ = ()

    def hold(self: Any, stream: str) -> None:
        """Keep ``stream``'s stored frames back until ``order`` starts it (a socket
        that joins a stream's group mid-connection, before it has read and
        replayed up to ``last``)."""
        if self.holding is None:
            self.holding = {}
        self.holding.setdefault(stream, [])
        if self.orders is not None:  # a new start: a fill in flight is dropped
            self.orders.pop(stream, None)

    def order(self: Any, stream: str, *, last: int, gap_wait: float) -> None:
        """Deliver ``stream``'s stored frames (those broadcast with a ``seq``) in seq
        order after ``last`` from now on: the endpoint calls it once it has sent
        (or replayed) everything up to ``last``. Frames held for it go first."""
        if self.orders is None:
            self.orders = {}
        order = self.orders.get(stream)
        ready: list[str] = []
        if order is None:
            order = self.orders[stream] = SeqOrder(last=last, gap_wait=gap_wait)
        else:
            ready = order.reset(last)
        held = self.holding.pop(stream, None) if self.holding else None
        if held:
            now = asyncio.get_running_loop().time()
            ready += [
                text for seq, text in held for text in order.offer(seq, text, now)
            ]
        self._write_first(ready)
        if order.held and self.gap_timer is None:
            self._arm_gap_timer()

    def unorder(self: Any, stream: str) -> None:
        """Forget ``stream``: its frames, if any still come, go out as they are."""
        if self.orders is not None:
            self.orders.pop(stream, None)
        if self.holding is not None:
            self.holding.pop(stream, None)

    def last_seq(self: Any, stream: str) -> int | None:
        order = None if self.orders is None else self.orders.get(stream)
        return None if order is None else order.last

    async def _offer(self: Any, stream: str, seq: int, text: str) -> None:
        order = self.orders[stream]  # type: ignore[index]
        for ready in order.offer(seq, text, asyncio.get_running_loop().time()):
            await self.write_broadcast(ready)
        if order.held and self.gap_timer is None:
            self._arm_gap_timer()

    def _arm_gap_timer(self: Any, at_least: float = 0.0) -> None:
        """One timer for the earliest hole's deadline (not while a fill reads: it
        arms the next itself), at least ``at_least`` seconds away."""
        self.gap_timer = None
        if self.filling or self.closing:
            return
        deadlines = [
            order.deadline() for order in (self.orders or {}).values() if order.held
        ]
        if not deadlines:
            return
        loop = asyncio.get_running_loop()
        due = min(d for d in deadlines if d is not None) - loop.time()
        self.gap_timer = loop.call_later(max(at_least, due), self._gap_due)

    def _gap_due(self: Any) -> None:
        self.gap_timer = None
        if not self.filling and not self.closing:
            self.filling = True
            self.spawn(self._fill_holes())

    def stop(self: Any) -> None:
        """The socket is gone: no more storage reads for it."""
        self.closing = True
        if self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None

    async def _fill_holes(self: Any) -> None:
        """A seq is still missing after its wait: read the holes back from storage,
        one read at a time; what a fill releases is written before anything still
        queued. A read that fails is logged and tried again a wait later."""
        retry = 0.0
        try:
            now = asyncio.get_running_loop().time()
            for stream, order in list((self.orders or {}).items()):
                hole = order.hole(now)
                if hole is None or self.fill is None:
                    continue
                try:
                    rows = await self.fill(stream, *hole)
                except Exception:
                    logger.exception("%s: reading seq %s..%s failed", stream, *hole)
                    retry = order.gap_wait
                    continue
                if self.orders is None or self.orders.get(stream) is not order:
                    continue  # left or restarted the stream meanwhile
                frames, skipped = order.fill(rows, upto=hole[1])
                for first, last in skipped:
                    logger.warning(
                        "%s: seq %s..%s missing, skipped", stream, first, last
                    )
                self._write_first(frames)
        finally:
            self.filling = False
            if self.gap_timer is None:
                self._arm_gap_timer(retry)
