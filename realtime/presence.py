"""Who is connected, where: per-connection entries with a TTL the heartbeat refreshes.

Entries are grouped by room: one Redis hash per room when the cache is Redis (shared by
every process, atomic), plain dicts in this process otherwise (the local-memory cache is
per process too; these calls never yield, so they are atomic). Each
entry holds its own expiry, refreshed by the connection's heartbeat: a server that
dies without cleaning up loses its connections' presence after ``PRESENCE_TTL``.
The room ``ALL`` holds every connection, for ``/api/realtime/stats/``; on Redis it is
``ALL_SHARDS`` hashes, a connection's entry in the one its id picks, so that every
connect and heartbeat does not write one key (on a Redis Cluster, one node).

Two doors to the same entries. Code on the event loop uses the ``a``-prefixed
functions (``apresence_set``, ``apresence_leave``, ``aroom_members``): on Redis they
go through the asyncio client (``realtime.cacheredis``), one pipeline per call
however many rooms, and a Redis that cannot answer raises ``Unavailable``. Sync
callers (DRF views in their threads, the admin, ``presence_stats``) keep the plain
functions and the cache's blocking client. The local store's async methods call its
sync ones and never yield.
"""

from __future__ import annotations

import asyncio
import json
import math
import zlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache

from realtime.batching import BatchQueue
from realtime.cacheredis import cache_redis_url, loop_client, unavailable_when_down
from realtime.clock import now as wall_clock
from realtime.conf import realtime_settings
from realtime.looplocal import per_loop

ALL = "_all"
ALL_SHARDS = 16  # Redis hashes ``ALL`` is spread over, by connection id
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

    # The event loop's door: the same calls, nothing awaited (atomic on this loop).
    async def aset_many(
        self, conn_id: str, entries: dict[str, dict], ttl: float
    ) -> None:
        self.post_many(conn_id, entries, ttl)

    def post_many(
        self, conn_id: str, entries: dict[str, dict], ttl: float
    ) -> asyncio.Future | None:
        for room, info in entries.items():
            self.set(room, conn_id, info, ttl)
        return None  # written

    async def settled(self) -> None:
        pass  # nothing is ever in flight

    async def aremove_many(self, conn_id: str, rooms: list[str]) -> None:
        for room in rooms:
            self.remove(room, conn_id)

    async def amembers(self, room: str) -> dict[str, dict]:
        return self.members(room)

    async def aoccupied(self, rooms: list[str]) -> set[str]:
        return {room for room in rooms if self.members(room)}

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
    """Presence in Redis hashes: ``{prefix}presence:{room}``, conn id → JSON
    ``[expires, info]``.

    ``client`` is the cache's blocking client (sync callers); ``aclient`` returns the
    running loop's asyncio client of the same Redis (``url``), for the ``a`` methods.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        clock: Clock = wall_clock,
        *,
        url: str = "",
        aclient: Callable[[], Any] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self.aclient = aclient or (lambda: loop_client(url))
        self._writes = per_loop(lambda: BatchQueue(self._write_batch, max_batch=500))

    def _key(self, room: str, conn_id: str = "") -> str:
        """The hash holding ``conn_id``'s entry in ``room``."""
        if room == ALL:
            return self._all_key(zlib.crc32(conn_id.encode()) % ALL_SHARDS)
        return f"{self.prefix}presence:{room}"

    def _keys(self, room: str) -> list[str]:
        """Every hash of ``room``: one, or ``ALL``'s shards."""
        if room == ALL:
            return [self._all_key(shard) for shard in range(ALL_SHARDS)]
        return [self._key(room)]

    def _all_key(self, shard: int) -> str:
        return f"{self.prefix}presence:{ALL}:{shard}"

    def _value(self, info: dict, ttl: float) -> str:
        return json.dumps([self.clock() + ttl, info], separators=(",", ":"))

    def _live(self, raw: dict) -> tuple[dict[str, dict], list[Any]]:
        """``HGETALL``'s answer split into live entries and expired fields."""
        now = self.clock()
        live, dead = {}, []
        for cid, value in raw.items():
            expires, info = json.loads(value)
            if expires > now:
                live[cid.decode() if isinstance(cid, bytes) else cid] = info
            else:
                dead.append(cid)
        return live, dead

    def _merge(
        self, keys: list[str], answers: list[dict]
    ) -> tuple[dict[str, dict], list[tuple[str, list[Any]]]]:
        """One room's ``HGETALL`` answers (one per hash): its live entries, and
        each hash's expired fields to prune."""
        live: dict[str, dict] = {}
        expired = []
        for key, raw in zip(keys, answers, strict=True):
            found, dead = self._live(raw)
            live.update(found)
            if dead:
                expired.append((key, dead))
        return live, expired

    def set(self, room: str, conn_id: str, info: dict, ttl: float) -> None:
        key = self._key(room, conn_id)
        pipe = self.client.pipeline()
        pipe.hset(key, conn_id, self._value(info, ttl))
        pipe.expire(key, int(ttl) + 1)
        pipe.execute()

    def remove(self, room: str, conn_id: str) -> None:
        self.client.hdel(self._key(room, conn_id), conn_id)

    def members(self, room: str) -> dict[str, dict]:
        keys = self._keys(room)
        if len(keys) == 1:
            answers = [self.client.hgetall(keys[0])]
        else:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            answers = pipe.execute()
        live, expired = self._merge(keys, answers)
        for key, dead in expired:
            self.client.hdel(key, *dead)
        return live

    # The event loop's door: failures as ``Unavailable``. Writes share a pipeline:
    # those made while one is in flight go together in the next (a reconnect storm
    # of 500 handshakes is a few round trips on one connection, not 500 waiting
    # for the pool), one at once when alone.
    async def aset_many(
        self, conn_id: str, entries: dict[str, dict], ttl: float
    ) -> None:
        """Write ``{room: info}`` for ``conn_id`` (a heartbeat's refresh of every
        room is one write)."""
        posted = self.post_many(conn_id, entries, ttl)
        if posted is not None:
            await posted

    def post_many(
        self, conn_id: str, entries: dict[str, dict], ttl: float
    ) -> asyncio.Future | None:
        """``aset_many`` without waiting: the write's future (None if empty)."""
        if not entries:
            return None
        return self._writes().post(conn_id=conn_id, entries=entries, ttl=ttl)

    async def settled(self) -> None:
        await self._writes().settled()

    async def aremove_many(self, conn_id: str, rooms: list[str]) -> None:
        if rooms:
            await self._writes().submit(conn_id=conn_id, rooms=rooms)

    async def _write_batch(self, writes: list[dict[str, Any]]) -> list[None]:
        """Every write of a batch in one pipeline, in order; Redis failing fails
        each of them (``BatchQueue`` hands each caller the error)."""
        pipe = self.aclient().pipeline(transaction=False)
        for write in writes:
            conn_id = write["conn_id"]
            if "rooms" in write:
                for room in write["rooms"]:
                    pipe.hdel(self._key(room, conn_id), conn_id)
                continue
            ttl = write["ttl"]
            for room, info in write["entries"].items():
                key = self._key(room, conn_id)
                pipe.hset(key, conn_id, self._value(info, ttl))
                pipe.expire(key, int(ttl) + 1)
        with unavailable_when_down("presence write"):
            await pipe.execute()
        return [None] * len(writes)

    async def amembers(self, room: str) -> dict[str, dict]:
        keys = self._keys(room)
        client = self.aclient()
        with unavailable_when_down("presence read"):
            if len(keys) == 1:
                answers = [await client.hgetall(keys[0])]
            else:
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.hgetall(key)
                answers = await pipe.execute()
            live, expired = self._merge(keys, answers)
            for key, dead in expired:
                await client.hdel(key, *dead)
        return live

    async def aoccupied(self, rooms: list[str]) -> set[str]:
        """Which of ``rooms`` hold a live entry: one pipeline for all of them
        (expired entries are left for ``members`` to prune)."""
        if not rooms:
            return set()
        pipe = self.aclient().pipeline(transaction=False)
        owners = []
        for room in rooms:
            for key in self._keys(room):
                pipe.hgetall(key)
                owners.append(room)
        with unavailable_when_down("presence read"):
            answers = await pipe.execute()
        pairs = zip(owners, answers, strict=True)
        return {room for room, raw in pairs if self._live(raw)[0]}


_store: LocalPresence | RedisPresence | None = None


def get_store() -> LocalPresence | RedisPresence:
    """The process's presence store, matching the configured cache."""
    global _store
    if _store is None:
        url = cache_redis_url(cache)
        if url is not None:  # RedisCache
            prefix = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:"
            client = cache._cache.get_client(write=True)
            _store = RedisPresence(client, prefix, url=url)
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


async def apresence_set(*, conn_id: str, entries: dict[str, dict]) -> None:
    """``presence_set`` on the event loop: one round trip for every room."""
    await get_store().aset_many(conn_id, entries, presence_ttl())


def apresence_post(*, conn_id: str, entries: dict[str, dict]) -> asyncio.Future | None:
    """``apresence_set`` without waiting (the heartbeat's refresh, no task per beat):
    None if already written, else the future of the write, which raises
    ``Unavailable`` if Redis did not take it."""
    return get_store().post_many(conn_id, entries, presence_ttl())


async def apresence_settled() -> None:
    """Wait until this event loop's presence writes so far have their answers."""
    await get_store().settled()


async def apresence_leave(*, conn_id: str, rooms: list[str]) -> None:
    """``presence_leave`` on the event loop."""
    await get_store().aremove_many(conn_id, rooms)


async def aroom_members(room: str) -> dict[str, dict]:
    """``room_members`` on the event loop."""
    return await get_store().amembers(room)


async def aoccupied_rooms(rooms: list[str]) -> set[str]:
    """Which of ``rooms`` someone is in, on the event loop (one round trip)."""
    return await get_store().aoccupied(rooms)


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
