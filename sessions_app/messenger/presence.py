"""Who of a user's contacts is online: told as devices come and go, and after a crash.

A user is online while any of their messenger sockets has a presence entry in the
room ``inbox.<id>`` (``realtime.presence``: entries live ``PRESENCE_TTL`` seconds,
refreshed by each answered heartbeat). The first device on and the last device off
tell the user's contacts (``user.online`` / ``user.offline``) through one typed event
per contact's inbox group; every socket keeps which contacts it was told are online,
so a notice it already gave is not given twice.

A server that dies tells nobody. So each process, every ``MESSENGER_PRESENCE_SWEEP``
seconds, checks the contacts its own sockets were told are online: one whose entries
have all expired is gone, and those sockets are told ``user.offline`` then. Every
process does this for its own sockets only, so nothing crosses processes twice.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from realtime import clock
from realtime.broadcast import publish_event
from realtime.looplocal import per_loop
from realtime.presence import aoccupied_rooms, aroom_members, presence_ttl, room_members
from realtime.protocol import encode_frame, utc_timestamp
from sessions_app.messenger.conf import knob
from sessions_app.messenger.groups import inbox_group

logger = logging.getLogger("sessions_app.messenger")

PRESENCE = "messenger.presence"  # {"user_id", "online", "text"}
USER_ONLINE = "user.online"
USER_OFFLINE = "user.offline"


class Watcher(Protocol):
    online_contacts: set[int]

    async def contact_changed(self, user_id: int, online: bool, text: str) -> None: ...

    def spawn(self, coro: Any) -> Any: ...


def is_online(user_id: int) -> bool:
    return bool(room_members(inbox_group(user_id)))


async def ais_online(user_id: int) -> bool:
    """``is_online`` on the event loop."""
    return bool(await aroom_members(inbox_group(user_id)))


async def online_among(user_ids: Iterable[int]) -> set[int]:
    """Which of ``user_ids`` are online, on the event loop (one round trip)."""
    rooms = {inbox_group(user_id): user_id for user_id in user_ids}
    return {rooms[room] for room in await aoccupied_rooms(list(rooms))}


def offline_frame(user_id: int, last_seen: float) -> str:
    return encode_frame(
        USER_OFFLINE, {"user_id": user_id, "last_seen": utc_timestamp_at(last_seen)}
    )


def utc_timestamp_at(epoch: float) -> str:
    return utc_timestamp(datetime.fromtimestamp(epoch, UTC))


async def announce(*, user_id: int, online: bool, contacts: set[int]) -> None:
    """Tell every contact's devices that ``user_id`` came online or went offline
    (one frame, encoded once; one event per contact's inbox)."""
    if online:
        text = encode_frame(USER_ONLINE, {"user_id": user_id})
    else:
        text = offline_frame(user_id, clock.now())
    event = {"type": PRESENCE, "user_id": user_id, "online": online, "text": text}
    for contact in contacts:
        await publish_event(inbox_group(contact), event)


class Sweeper:
    """This process's messenger sockets (on one event loop) and their sweep timer."""

    def __init__(self) -> None:
        self.sockets: weakref.WeakSet[Any] = weakref.WeakSet()
        self.timer: asyncio.TimerHandle | None = None
        # user id → when a socket here was last told they came on (loop time): a
        # sweep's read that began before must not call them off afterwards.
        self.came_on: dict[int, float] = {}

    def told_online(self, user_id: int) -> None:
        self.came_on[user_id] = asyncio.get_running_loop().time()

    def add(self, socket: Watcher) -> None:
        self.sockets.add(socket)
        if self.timer is None:
            self._arm()

    def discard(self, socket: Watcher) -> None:
        self.sockets.discard(socket)

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(
            knob("MESSENGER_PRESENCE_SWEEP"), lambda: loop.create_task(self.sweep())
        )

    async def sweep(self) -> None:
        """Tell this process's sockets of every contact that has gone without a word."""
        self.timer = None
        began = asyncio.get_running_loop().time()
        try:
            watched: dict[int, list[Any]] = {}
            for socket in list(self.sockets):
                for user_id in socket.online_contacts:
                    watched.setdefault(user_id, []).append(socket)
            # Its entries expired: last seen at most one TTL before now.
            last_seen = clock.now() - presence_ttl()
            online = await online_among(watched)
            came_on = self.came_on
            self.came_on = {u: t for u, t in came_on.items() if t >= began}
            for user_id, sockets in watched.items():
                if user_id in online or came_on.get(user_id, 0.0) >= began:
                    continue  # on, or came on while this sweep was reading
                text = offline_frame(user_id, last_seen)
                for socket in sockets:
                    # Each socket's own task: a client that is behind (its send
                    # waits) holds up only itself, not the process's sweep.
                    socket.spawn(socket.contact_changed(user_id, False, text))
        except Exception:  # a Redis blip: the next sweep tries again
            logger.exception("presence sweep failed")
        finally:
            if self.sockets and self.timer is None:
                self._arm()


sweeper = per_loop(Sweeper)
