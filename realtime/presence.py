"""Who is connected, where: per-connection entries with a TTL the heartbeat refreshes.

Entries are grouped by room: one Redis hash per room when the cache is Redis (shared by
every process, atomic), plain dicts in this process otherwise (the local-memory cache is
per process too; these calls never yield, so they are atomic). Each
entry holds its own expiry, refreshed by the connection's heartbeat: a server that
dies without cleaning up loses its connections' presence after ``PRESENCE_TTL``.
The room ``ALL`` holds every connection, for ``/api/realtime/stats/``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache

from realtime.clock import now as wall_clock
from realtime.conf import realtime_settings

ALL = "_all"
Clock = Callable[[], float]


def presence_ttl() -> float:
    return realtime_settings.PRESENCE_TTL


class LocalPresence:
    """Presence for one process (no Redis): plain dicts, nothing pickled.

    Django's local-memory cache is per process too, but it pickles every value: a room
    of N connections would cost O(N) per join and per heartbeat. Here a read is one
    C-level copy of the room's ``{conn_id: info}`` (every join reads its room, so a
    class of 2,000 joining reads 2,000 times); expired entries are swept only once the
    room's earliest expiry has passed, not on every read.
    """

    def __init__(self, clock: Clock = wall_clock) -> None:
        self.rooms: dict[str, dict[str, dict]] = {}  # room → {conn_id: info}
        self.expiries: dict[str, dict[str, float]] = {}  # room → {conn_id: expires}
        self.earliest: dict[str, float] = {}  # room → no entry expires before this
        self.clock = clock

    def set(self, room: str, conn_id: str, info: dict, ttl: float) -> None:
        expires = self.clock() + ttl
        self.expiries.setdefault(room, {})[conn_id] = expires
        self.rooms.setdefault(room, {})[conn_id] = info
        if expires < self.earliest.get(room, math.inf):
            self.earliest[room] = expires

    def remove(self, room: str, conn_id: str) -> None:
        entries = self.rooms.get(room)
        if entries is not None:
            entries.pop(conn_id, None)
            self.expiries[room].pop(conn_id, None)
            if not entries:
                self._drop(room)

    def _drop(self, room: str) -> None:
        self.rooms.pop(room, None)
        self.expiries.pop(room, None)
        self.earliest.pop(room, None)

    def members(self, room: str) -> dict[str, dict]:
        entries = self.rooms.get(room)
        if not entries:
            return {}
        now = self.clock()
        if self.earliest.get(room, math.inf) <= now:
            self._sweep(room, now)
        # A copy: DRF's sync views read from a worker thread while the loop writes
        # (dict.copy holds the GIL throughout).
        return self.rooms.get(room, {}).copy()

    def _sweep(self, room: str, now: float) -> None:
        # Copies for the same reason; the room itself stays (the loop may be
        # entering it right now), ``remove`` drops it when its last entry leaves.
        expiries, entries = self.expiries.get(room), self.rooms.get(room)
        if expiries is None or entries is None:
            return
        for conn_id, expires in expiries.copy().items():
            if expires <= now:
                expiries.pop(conn_id, None)
                entries.pop(conn_id, None)
        self.earliest[room] = min(expiries.copy().values(), default=math.inf)


class RedisPresence:
    """Presence in Redis hashes: ``HSET room conn_id {expires, info}``."""

    def __init__(self, client: Any, prefix: str, clock: Clock = wall_clock) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock

    def _key(self, room: str) -> str:
        return f"{self.prefix}presence:{room}"

    def set(self, room: str, conn_id: str, info: dict, ttl: float) -> None:
        key = self._key(room)
        value = json.dumps([self.clock() + ttl, info], separators=(",", ":"))
        pipe = self.client.pipeline()
        pipe.hset(key, conn_id, value)
        pipe.expire(key, int(ttl) + 1)
        pipe.execute()

    def remove(self, room: str, conn_id: str) -> None:
        self.client.hdel(self._key(room), conn_id)

    def members(self, room: str) -> dict[str, dict]:
        key = self._key(room)
        now = self.clock()
        live, dead = {}, []
        for cid, raw in self.client.hgetall(key).items():
            expires, info = json.loads(raw)
            cid = cid.decode() if isinstance(cid, bytes) else cid
            if expires > now:
                live[cid] = info
            else:
                dead.append(cid)
        if dead:
            self.client.hdel(key, *dead)
        return live


_store: LocalPresence | RedisPresence | None = None


def get_store() -> LocalPresence | RedisPresence:
    """The process's presence store, matching the configured cache."""
    global _store
    if _store is None:
        backend = getattr(cache, "_cache", None)
        if backend is not None and hasattr(backend, "get_client"):  # RedisCache
            prefix = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:"
            _store = RedisPresence(backend.get_client(write=True), prefix)
        else:
            _store = LocalPresence()
    return _store


def reset_store() -> None:
    """Forget the store (tests switching cache backends)."""
    global _store
    _store = None


# ----------------------------------------------------------------- connection level
def presence_set(*, conn_id: str, entries: dict[str, dict]) -> None:
    """Write (or re-write) a connection's entries, ``{room: info}``, with a fresh TTL.

    The heartbeat calls this with all of a connection's entries: re-setting rather than
    touching means an entry that expired (a late beat) comes back.
    """
    ttl = presence_ttl()
    store = get_store()
    for room, info in entries.items():
        store.set(room, conn_id, info, ttl)


def presence_leave(*, conn_id: str, rooms: list[str]) -> None:
    store = get_store()
    for room in rooms:
        store.remove(room, conn_id)


def room_members(room: str) -> dict[str, dict]:
    """Live connections in ``room``: ``{conn_id: info}``."""
    return get_store().members(room)


def presence_stats() -> dict[str, Any]:
    """``/api/realtime/stats/``: users, connections, rooms, per endpoint."""
    members = room_members(ALL)
    users = {info.get("user_id") for info in members.values() if info.get("user_id")}
    rooms: set[str] = set()
    by_endpoint: dict[str, int] = {}
    for info in members.values():
        rooms.update(info.get("rooms", ()))
        endpoint = info.get("endpoint", "unknown")
        by_endpoint[endpoint] = by_endpoint.get(endpoint, 0) + 1
    return {
        "online_users": len(users),
        "total_connections": len(members),
        "active_rooms": len(rooms),
        "by_endpoint": by_endpoint,
    }
