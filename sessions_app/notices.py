"""Who came and who went: a live session's presence notices, coalesced per room.

Why. When 2,000 people open one session at the same minute (a class, a webinar), a
``participant.joined`` per join to everyone already there costs N²/2 frames: two
million socket writes for one class. So, per server process, event loop and room:

* **Leading edge.** A notice in a room that sent none within the last window and has
  none waiting goes out at once, in the single form (``participant.joined`` /
  ``participant.left`` to the others), exactly as docs/protocol.md §5 describes.
* **Otherwise it waits.** One timer per room flushes at ``last flush + window``: the
  net change per participant (``net_changes``) as one frame: the single form if one
  change remains, else ``participants.changed {"joined": [...], "left": [...]}`` to
  the whole room (it may name the receiver itself, which its welcome already listed).
  A room quiet for a whole window is forgotten.

The window is ``SESSION_NOTICE_WINDOW`` (0.25 s; 0 sends every notice at once).

Correctness. A socket's ``session.welcome`` lists who was present when it was read;
the frames that follow it must bring a client that applies them idempotently (set on
join, delete on leave) to who is present now. Hence:

* A come-and-go within a window (joined then left; left then joined, a reconnect)
  cancels out only if no welcome was read in this process between the two presence
  changes (such a welcome listed the intermediate state), and only when this process
  is the only one (with ``REDIS_URL``, a welcome on another process may have). Else
  the final state is sent, which may name someone a receiver never heard of: harmless.
* At the flush, a change that presence no longer agrees with is dropped: a ``left``
  of someone present again (perhaps announced by another process meanwhile) or a
  ``joined`` of someone gone (their ``left`` follows). A notice held back by the
  window therefore never overrides a newer one.

Welcome reads are counted (``welcome_read``); each notice carries the count when its
presence change happened (``before``) and just after the socket's own welcome read,
if it had one (``after``): "no welcome in between" is ``last.before == first.after``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings

from realtime.broadcast import broadcast
from realtime.groups import session_group
from realtime.looplocal import per_loop
from realtime.protocol import encode_frame
from sessions_app.conf import sessions_settings
from sessions_app.selectors import asession_online_by_id

logger = logging.getLogger("sessions_app.notices")

JOINED = "participant.joined"
LEFT = "participant.left"
CHANGED = "participants.changed"


def notice_window() -> float:
    return sessions_settings.SESSION_NOTICE_WINDOW


def coalesce_from() -> int:
    """Rooms with fewer people online get every notice at once, as PROTOCOL §5 says."""
    return sessions_settings.SESSION_NOTICE_COALESCE_FROM


@dataclass(frozen=True, slots=True)
class Notice:
    """One participant came (``JOINED``) or went (``LEFT``)."""

    type: str
    person: dict[str, Any]  # {"participant_id","nickname","role"}
    channel: str | None = None  # the socket it is about: not told about itself
    before: int = 0  # welcomes read when its presence changed
    after: int = 0  # ... and just after its own welcome read (joins)

    @property
    def participant_id(self) -> int:
        return self.person["participant_id"]


def net_changes(notices: Iterable[Notice], *, may_cancel: bool = True) -> list[Notice]:
    """What a window of ``notices`` changed, one notice per participant at most.

    Per participant, in order of first arrival: the last notice (its final state, its
    latest nickname), unless the first and the last differ (came and went, or went
    and came back), no welcome was read in between and ``may_cancel``: then nothing.
    """
    first: dict[int, Notice] = {}
    last: dict[int, Notice] = {}
    for notice in notices:
        first.setdefault(notice.participant_id, notice)
        last[notice.participant_id] = notice
    changes = []
    for participant_id, opened in first.items():
        closed = last[participant_id]
        if may_cancel and opened.type != closed.type and closed.before == opened.after:
            continue
        changes.append(closed)
    return changes


def still_true(changes: Iterable[Notice], online: Collection[int]) -> list[Notice]:
    """The changes presence agrees with: joined ones online, left ones not."""
    return [c for c in changes if (c.type == JOINED) == (c.participant_id in online)]


def freshened(changes: Iterable[Notice], online: Collection[int]) -> list[Notice]:
    """Joined people as presence has them now: a rename while the notice waited wins."""
    if not isinstance(online, Mapping):
        return list(changes)
    return [
        replace(c, person=online.get(c.participant_id, c.person))
        if c.type == JOINED
        else c
        for c in changes
    ]


def changes_frame(
    changes: Sequence[Notice], online_count: int | None = None
) -> tuple[str, str | None] | None:
    """The one frame telling a room ``changes``: ``(text, channel to leave out)``.

    ``online_count``: how many people presence has online as this is sent. A welcome
    lists only some of a big room (``SESSION_WELCOME_ONLINE_MAX``), so clients take
    the count from each notice rather than keep it by hand.
    """
    if not changes:
        return None
    count = {} if online_count is None else {"online_count": online_count}
    if len(changes) == 1:
        (only,) = changes
        return encode_frame(only.type, {**only.person, **count}), only.channel
    payload = {
        "joined": [c.person for c in changes if c.type == JOINED],
        "left": [c.person for c in changes if c.type == LEFT],
        **count,
    }
    return encode_frame(CHANGED, payload), None


async def _broadcast(session_id: int, text: str, exclude: str | None) -> None:
    await broadcast(session_group(session_id), text, exclude=exclude)


Send = Callable[[int, str, str | None], Awaitable[None]]


@dataclass(slots=True)
class _Room:
    pending: list[Notice] = field(default_factory=list)
    last_flush: float = float("-inf")
    timer: asyncio.TimerHandle | None = None  # set as long as the room is known


class NoticeCoalescer:
    """The presence notices of every room on one event loop (``coalescer()``)."""

    def __init__(
        self,
        *,
        may_cancel: bool = True,
        send: Send = _broadcast,
        online: Callable[[int], Collection[int] | Awaitable[Collection[int]]]
        | None = None,
    ) -> None:
        self.may_cancel = may_cancel
        self.send = send
        # Who is here now, by participant id (a mapping to their names refreshes them).
        self.online = online or (lambda sid: asession_online_by_id(session_id=sid))
        self.rooms: dict[int, _Room] = {}
        self.welcomes = 0  # welcome reads so far, in every room
        self.flushing: set[asyncio.Task] = set()

    def welcome_read(self) -> tuple[int, int]:
        """Count a welcome's read of presence: the count before it and after it."""
        self.welcomes += 1
        return self.welcomes - 1, self.welcomes

    async def tell(
        self, session_id: int, notice: Notice, room_size: int | None = None
    ) -> None:
        """Send ``notice`` now (a small room, the leading edge, or no window) or with
        the room's next flush. ``room_size``: people online (``None``: unknown, big)."""
        window = notice_window()
        room = self.rooms.get(session_id)
        small = room_size is not None and room_size < coalesce_from()
        if window <= 0 or (small and (room is None or not room.pending)):
            await self._send_now(session_id, notice, room_size)
            return
        now = asyncio.get_running_loop().time()
        if room is None:
            room = self.rooms[session_id] = _Room()
        if not room.pending and now - room.last_flush >= window:
            room.last_flush = now
            self._arm(session_id, room, window)
            await self._send_now(session_id, notice, room_size)
            return
        room.pending.append(notice)  # the room's timer is armed: it flushes this

    async def _send_now(
        self, session_id: int, notice: Notice, online_count: int | None
    ) -> None:
        text, exclude = changes_frame([notice], online_count)
        await self.send(session_id, text, exclude)

    def _arm(self, session_id: int, room: _Room, delay: float) -> None:
        if room.timer is not None:
            room.timer.cancel()
        room.timer = asyncio.get_running_loop().call_later(
            max(0.0, delay), self._on_timer, session_id
        )

    def _on_timer(self, session_id: int) -> None:
        room = self.rooms[session_id]
        room.timer = None
        if not room.pending:  # quiet for a whole window: the next notice leads again
            del self.rooms[session_id]
            return
        notices, room.pending = room.pending, []
        room.last_flush = asyncio.get_running_loop().time()
        self._arm(session_id, room, notice_window())
        # The room's state is settled before anything awaits: notices arriving while
        # this flush is sent wait for the next one. Not a connection's task: a
        # disconnect (even the last one) never cancels it.
        task = asyncio.ensure_future(self._flush(session_id, notices))
        self.flushing.add(task)
        task.add_done_callback(self.flushing.discard)

    async def _flush(self, session_id: int, notices: list[Notice]) -> None:
        try:
            changes = net_changes(notices, may_cancel=self.may_cancel)
            count = None
            if changes:
                online = self.online(session_id)
                if inspect.isawaitable(online):  # presence read on the loop
                    online = await online
                changes = freshened(still_true(changes, online), online)
                count = len(online)
            frame = changes_frame(changes, count)
            if frame is not None:
                await self.send(session_id, *frame)
        except Exception:
            logger.exception(
                "session %s: %d presence notices not sent", session_id, len(notices)
            )


def _new_coalescer() -> NoticeCoalescer:
    # With Redis, sockets of one room live in several processes whose welcome
    # reads this one cannot count: never cancel a come-and-go there.
    return NoticeCoalescer(may_cancel=not settings.REDIS_URL)


coalescer = per_loop(_new_coalescer)  # this event loop's coalescer
