"""Per-process caches of the rows every connect reads, with a TTL and invalidation.

A connect used to read the same few rows each time (the user behind a token, the
session behind a code, the participant behind a socket), each read a trip to the one
shared database thread. A ``LocalCache`` keeps them in this process for a short TTL:

* a hit is a dict lookup on the event loop, no thread hop;
* a miss reads the row (in the database thread) and ``put``s it;
* a change made in this process is seen at once: whoever changes the row (a model
  signal, or the service that writes it with ``update()``) calls ``forget``;
* a change made in another process is seen after the TTL at most: that is the bound
  to document beside each cache's knob.

A fill races an invalidation: a row read before a change may be put after the
change's ``forget``. ``put`` therefore takes the ``generation()`` read before the
row was and drops the value if anything was forgotten since.

Values are shared between the connections that read them: treat them as read-only.
Reads are lock-free (the loop never waits); writers take a lock, as they may run in
the database thread, a request thread or the loop, and only they change the dict.
``clear_all()`` empties every cache (tests, whose database is rolled back under
them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.db import transaction

from realtime import clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_caches: list[LocalCache] = []


class LocalCache(Generic[K, V]):
    """``key → value`` for ``ttl()`` seconds, at most ``max_entries()`` of them.

    ``ttl`` and ``max_entries`` are read at each ``put`` (knobs); a TTL of 0 turns
    the cache off. When full, the oldest entry goes (entries share one TTL, so the
    oldest is also the first to expire).
    """

    def __init__(
        self,
        name: str,
        *,
        ttl: Callable[[], float],
        max_entries: Callable[[], int],
    ) -> None:
        self.name = name
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        _caches.append(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The value kept for ``key``, or ``None`` (never kept, expired, forgotten)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        # An expired entry stays until a put replaces or evicts it: only writers,
        # under the lock, change the dict.
        return value if expires > clock.monotonic() else None

    def generation(self) -> int:
        """Read before reading a row to ``put``: forgets in between void the put."""
        return self._generation

    def put(self, key: K, value: V, generation: int) -> None:
        """Keep ``value`` unless something was forgotten since ``generation``."""
        ttl = self.ttl()
        if ttl <= 0:
            return
        with self._lock:
            if generation != self._generation:
                return
            entries = self._entries
            entries.pop(key, None)  # re-inserted last: insertion order = expiry order
            limit = max(1, self.max_entries())
            while len(entries) >= limit:
                del entries[next(iter(entries))]
            entries[key] = (clock.monotonic() + ttl, value)

    def forget(self, key: K) -> None:
        """Drop ``key``; a fill that read its row before now is not kept."""
        self._after_change(lambda: self._entries.pop(key, None))

    def forget_where(self, predicate: Callable[[K, V], bool]) -> None:
        """Drop every entry ``predicate(key, value)`` holds for (a parent deleted)."""

        def drop() -> None:
            for key, (_, value) in list(self._entries.items()):
                if predicate(key, value):
                    del self._entries[key]

        self._after_change(drop)

    def _after_change(self, drop: Callable[[], object]) -> None:
        self._locked(drop)
        # Changed inside a transaction: until it commits, a read elsewhere (the
        # database thread) still sees the old row and may keep it: forget again then.
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(lambda: self._locked(drop))

    def _locked(self, drop: Callable[[], object]) -> None:
        with self._lock:
            self._generation += 1
            drop()

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()


def clear_all() -> None:
    """Empty every cache of this process."""
    for cache in _caches:
        cache.clear()
