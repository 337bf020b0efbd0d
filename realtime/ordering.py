"""Seq-ordered delivery of one stream's stored frames to one socket: pure, no I/O.

Every stored frame of a stream (a room, a conversation) is numbered in turn (``seq``),
but several server processes publish, so broadcasts can arrive out of order, and a seq
whose transaction rolled back never arrives at all: a frame ahead of its turn is held,
and a seq still missing after ``gap_wait`` is read back from storage, then skipped if
storage does not have it either.

Times are plain floats from the caller's monotonic clock, so tests need no sleeping.
The caller writes the frames each call returns before those of its next call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class Filled(NamedTuple, Generic[T]):
    """What a storage read released: frames to write in order, seq ranges skipped."""

    frames: list[T]
    # (first, last) inclusive: seqs storage does not have (a rolled-back transaction)
    skipped: list[tuple[int, int]]


class SeqOrder(Generic[T]):
    """Which frames of one stream to write to one socket now, in seq order, once.

    ``T`` is whatever the caller writes (usually the encoded text): the order only
    keeps references to it. ``last`` is the last seq delivered.
    """

    __slots__ = ("last", "gap_wait", "_held")

    def __init__(self, *, last: int, gap_wait: float) -> None:
        self.last = last
        self.gap_wait = gap_wait
        # seq -> (frame, when it began waiting); made when a frame first arrives
        # early, which most sockets never see.
        self._held: dict[int, tuple[T, float]] | None = None

    @property
    def held(self) -> int:
        """How many frames wait for an earlier seq."""
        return len(self._held) if self._held else 0

    def ready(self, seq: int) -> bool:
        """May ``seq`` be written at once, unbuffered? (the next one, nothing held)"""
        return seq == self.last + 1 and not self._held

    def done(self, seq: int) -> None:
        """``seq``, found ``ready``, was written: it is now the last delivered."""
        if seq > self.last:
            self.last = seq

    def offer(self, seq: int, frame: T, now: float) -> list[T]:
        """A frame arrived: what to write now, in order (``[]``: old, dup or held)."""
        held = self._held
        if seq <= self.last or (held and seq in held):
            return []
        if seq != self.last + 1:
            if held is None:
                held = self._held = {}
            held[seq] = (frame, now)
            return []
        self.last = seq
        ready = [frame]
        self._release(ready)
        return ready

    def deadline(self) -> float | None:
        """When ``hole`` will have an answer; ``None``: nothing is held."""
        if not self._held:
            return None
        return self._waited_since(self._held) + self.gap_wait

    def hole(self, now: float) -> tuple[int, int] | None:
        """The seqs to read from storage, ``(after, upto]``, once the oldest held
        frame has waited ``gap_wait``; then ``fill`` with the rows read."""
        held = self._held
        if not held or now < self._waited_since(held) + self.gap_wait:
            return None
        return self.last, max(held)

    def fill(self, rows: Iterable[tuple[int, T]], *, upto: int) -> Filled[T]:
        """Stored ``(seq, frame)`` rows read for ``hole``'s range up to ``upto``: what
        to write now, in order; seqs up to ``upto`` that storage lacks are skipped.

        Rows already delivered or held, or above ``upto``, are ignored (a held
        frame is what every other socket got). Held seqs above ``upto`` keep waiting.
        """
        held = self._held
        for seq, frame in rows:
            if self.last < seq <= upto and not (held and seq in held):
                if held is None:
                    held = self._held = {}
                held[seq] = (frame, 0.0)  # ready now or skipped past: never waits
        ready: list[T] = []
        skipped: list[tuple[int, int]] = []
        self._release(ready)
        while self._held and self.last < upto:
            # last + 1 is missing and storage was read for it: it will never come.
            first = self.last + 1
            self.last = min(min(self._held) - 1, upto)
            skipped.append((first, self.last))
            self._release(ready)
        return Filled(ready, skipped)

    def reset(self, last: int) -> list[T]:
        """A replay delivered up to ``last``: drops what it covered, returns what is
        now next in order (usually nothing)."""
        self.last = last
        ready: list[T] = []
        if self._held:
            for seq in [seq for seq in self._held if seq <= last]:
                del self._held[seq]
            self._release(ready)
        return ready

    @staticmethod
    def _waited_since(held: dict[int, tuple[T, float]]) -> float:
        return min(since for _, since in held.values())

    def _release(self, ready: list[T]) -> None:
        held = self._held
        while held and self.last + 1 in held:
            self.last += 1
            ready.append(held.pop(self.last)[0])
