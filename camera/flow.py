"""Per-viewer flow control for camera frames (docs/camera.md): pure, no I/O.

daphne never blocks a ``send``: whatever the server sends to a viewer that does not
read piles up in the server's memory. So each viewer has at most ``max_in_flight``
frames sent and not yet acknowledged; a newer frame of a kind replaces the one
waiting (latest wins), so a slow viewer sees fewer, fresher frames, and what is kept
for it is bounded by one pending frame per kind. Poses are not held back by frames
(they are small); ``max_fps`` thins out both. A viewer with frames in flight that
acknowledges nothing for ``ack_timeout`` seconds is dead (the consumer closes it 4003).

Times are plain floats from the caller's monotonic clock, so tests need no sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

# A bucket one and a half frames deep: with max_fps 25 on a 30 fps source a viewer
# gets 25 fps (5 of 6 frames); a depth of exactly 1 would lose the fractional credit
# and give every other frame (15 fps). It never allows more than max_fps on average.
GATE_DEPTH = 1.5
_EPSILON = 1e-6  # 1/30 s times 25 fps summed six times is 0.99999...: still a frame


class RateGate:
    """Admits at most ``max_fps`` frame numbers per second on average (token bucket).

    A decision is taken once per ``seq``: the poses and every kind of one frame are
    admitted or skipped together, so an overlay always has its image.
    """

    def __init__(self, max_fps: float | None) -> None:
        self.max_fps = max_fps
        self.tokens = GATE_DEPTH
        self.updated: float | None = None
        self.seq: int | None = None
        self.decision = True

    def admit(self, seq: int, now: float) -> bool:
        if seq == self.seq:
            return self.decision
        self.seq = seq
        if self.max_fps is None:
            self.decision = True
            return True
        if self.updated is not None:
            elapsed = max(0.0, now - self.updated)
            self.tokens = min(GATE_DEPTH, self.tokens + elapsed * self.max_fps)
        self.updated = now
        self.decision = self.tokens >= 1.0 - _EPSILON
        if self.decision:
            self.tokens -= 1.0
        return self.decision


class ViewerFlow(Generic[T]):
    """What to send one viewer now, what to keep for later, what to drop.

    ``T`` is whatever the caller sends (the shared frame event): the flow only keeps
    references to it, never copies.
    """

    def __init__(self, *, max_in_flight: int, ack_timeout: float) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.ack_timeout = ack_timeout
        self.kinds: frozenset[str] = frozenset()
        self.poses = False
        self.gate = RateGate(None)
        self.in_flight: list[tuple[int, str]] = []  # (seq, kind), in send order
        self.pending: dict[str, tuple[int, T]] = {}  # kind -> newest waiting frame
        self.progress_at = 0.0  # last ack that freed a slot, or the first send after
        self.sent = 0
        self.replaced = 0  # pending frames dropped for a newer one
        self.skipped = 0  # frames refused by the max_fps gate

    def subscribe(
        self, kinds: Iterable[str], *, poses: bool, max_fps: float | None
    ) -> None:
        """Replace the subscription; frames waiting for dropped kinds are dropped."""
        self.kinds = frozenset(kinds)
        self.poses = poses
        self.gate = RateGate(max_fps)
        for kind in [kind for kind in self.pending if kind not in self.kinds]:
            del self.pending[kind]

    def wants_poses(self, seq: int, now: float) -> bool:
        """Send the poses of frame ``seq``? Flow control does not hold them back."""
        return self.poses and self.gate.admit(seq, now)

    def offer(self, kind: str, seq: int, item: T, now: float) -> T | None:
        """A new frame: ``item`` if it should be sent now (it is then in flight),
        else ``None`` (not subscribed, over max_fps, or kept as the pending one)."""
        if kind not in self.kinds:
            return None
        if not self.gate.admit(seq, now):
            self.skipped += 1
            return None
        if len(self.in_flight) < self.max_in_flight:
            self._mark(seq, kind, now)
            return item
        if kind in self.pending:
            self.replaced += 1
        self.pending[kind] = (seq, item)
        return None

    def ack(self, seq: int, kind: str | None, now: float) -> list[T]:
        """``frame.ack``: frees every frame in flight up to ``seq`` (of ``kind``,
        or of every kind); returns the pending frames to send now, oldest first."""
        keep = [
            (s, k)
            for s, k in self.in_flight
            if s > seq or (kind is not None and k != kind)
        ]
        if len(keep) == len(self.in_flight):
            return []  # a duplicate or stale ack: no progress
        self.in_flight = keep
        self.progress_at = now
        ready: list[T] = []
        while self.pending and len(self.in_flight) < self.max_in_flight:
            kind_ = min(self.pending, key=lambda k: self.pending[k][0])
            pending_seq, item = self.pending.pop(kind_)
            self._mark(pending_seq, kind_, now)
            ready.append(item)
        return ready

    def deadline(self) -> float | None:
        """When the viewer is dead unless it acknowledges; ``None``: nothing owed."""
        if not self.in_flight:
            return None
        return self.progress_at + self.ack_timeout

    def expired(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def _mark(self, seq: int, kind: str, now: float) -> None:
        if not self.in_flight:
            self.progress_at = now  # the clock starts when something is owed
        self.in_flight.append((seq, kind))
        self.sent += 1
