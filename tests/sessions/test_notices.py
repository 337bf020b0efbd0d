"""Presence notices coalesced per room (sessions_app/notices.py): the pure parts
(net change, the frame) as functions, the coalescer with an injected ``send``.
The room as clients see it: test_presence_notices.py."""

from __future__ import annotations

import asyncio
import json

from sessions_app import notices
from sessions_app.notices import (
    CHANGED,
    JOINED,
    LEFT,
    Notice,
    NoticeCoalescer,
    changes_frame,
    net_changes,
    still_true,
)
from tests.sessions.conftest import settled


def person(pid: int, nickname: str | None = None) -> dict:
    return {"participant_id": pid, "nickname": nickname or f"p{pid}", "role": "guest"}


def joined(pid: int, before: int = 0, nickname: str | None = None) -> Notice:
    # A joining socket reads its own welcome right after its presence changed.
    return Notice(JOINED, person(pid, nickname), f"c{pid}", before, before + 1)


def left(pid: int, mark: int = 0) -> Notice:
    return Notice(LEFT, person(pid), f"c{pid}", mark, mark)


# ------------------------------------------------------------------ net change
def test_distinct_changes_are_kept_in_arrival_order():
    window = [joined(3), left(1), joined(2)]
    assert net_changes(window) == window


def test_join_then_leave_cancels_out_when_no_welcome_was_read_between():
    assert net_changes([joined(1, before=4), left(1, mark=5)]) == []


def test_a_reconnect_cancels_out_when_no_welcome_was_read_between():
    assert net_changes([left(1, mark=5), joined(1, before=5)]) == []


def test_a_welcome_read_in_between_keeps_the_final_state():
    # Someone's welcome listed 1 between the two: they must hear the end of it.
    assert net_changes([joined(1, before=4), left(1, mark=6)]) == [left(1, mark=6)]
    back = joined(1, before=6)
    assert net_changes([left(1, mark=5), back]) == [back]


def test_with_several_processes_nothing_cancels():
    gone = left(1, mark=5)
    assert net_changes([joined(1, before=4), gone], may_cancel=False) == [gone]


def test_the_last_notice_of_a_participant_wins():
    last = joined(1, before=9, nickname="renamed")
    window = [joined(1, before=1), left(1, mark=3), left(2), last]
    assert net_changes(window) == [last, left(2)]


def test_presence_has_the_last_word():
    changes = [joined(1), joined(2), left(3), left(4)]
    assert still_true(changes, online={1, 4}) == [joined(1), left(3)]


def test_frames():
    assert changes_frame([]) is None
    text, exclude = changes_frame([joined(7)])
    assert exclude == "c7"
    assert json.loads(text)["type"] == JOINED
    assert json.loads(text)["payload"] == person(7)
    text, exclude = changes_frame([joined(1), left(2), joined(3)])
    assert exclude is None  # the whole room, the joiners included
    frame = json.loads(text)
    assert frame["type"] == CHANGED
    assert frame["payload"] == {"joined": [person(1), person(3)], "left": [person(2)]}
    # With the count presence had as it was sent (clients show it: a big room's
    # welcome lists only some of the people online).
    text, _ = changes_frame([joined(7)], online_count=40)
    assert json.loads(text)["payload"] == {**person(7), "online_count": 40}
    text, _ = changes_frame([joined(1), left(2)], online_count=0)
    assert json.loads(text)["payload"]["online_count"] == 0


# ------------------------------------------------------------------ the coalescer
class Sent:
    """An injected ``send``: records the frames, in order."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, dict, str | None]] = []
        self.fail = False
        self.queue: asyncio.Queue = asyncio.Queue()

    async def __call__(self, session_id: int, text: str, exclude: str | None) -> None:
        if self.fail:
            raise RuntimeError("layer down")
        sent = (session_id, json.loads(text), exclude)
        self.frames.append(sent)
        self.queue.put_nowait(sent)

    async def next(self, timeout: float = 2) -> tuple[int, dict, str | None]:
        """The next frame sent, in order (those already sent first)."""
        return await asyncio.wait_for(self.queue.get(), timeout)


async def test_leading_edge_at_once_then_one_flush_per_window(settings):
    settings.SESSION_NOTICE_WINDOW = 0.1
    sent = Sent()
    online = {1, 2, 3, 4}
    c = NoticeCoalescer(send=sent, online=lambda sid: online)
    await c.tell(9, joined(1))
    assert len(sent.frames) == 1  # sent before tell returned
    _, frame, exclude = await sent.next()
    assert (frame["type"], exclude) == (JOINED, "c1")
    timer = c.rooms[9].timer
    for pid in (2, 3, 4):
        await c.tell(9, joined(pid))
    assert len(sent.frames) == 1 and c.rooms[9].timer is timer  # one timer per room
    _, frame, exclude = await sent.next()
    assert frame["type"] == CHANGED and exclude is None
    assert [p["participant_id"] for p in frame["payload"]["joined"]] == [2, 3, 4]
    online.discard(4)
    await c.tell(9, left(4))  # within a window of that flush: waits for the next
    _, frame, exclude = await sent.next()
    assert (frame["type"], exclude) == (LEFT, "c4")
    await settled(c)
    assert len(sent.frames) == 3


async def test_rooms_are_independent_and_a_quiet_room_is_forgotten(settings):
    settings.SESSION_NOTICE_WINDOW = 0.05
    sent = Sent()
    c = NoticeCoalescer(send=sent, online=lambda sid: {1})
    await c.tell(1, joined(1))
    await c.tell(2, joined(1))
    assert [sid for sid, _, _ in sent.frames] == [1, 2]
    await settled(c)
    await c.tell(1, left(1, mark=7))  # a new leading edge
    assert len(sent.frames) == 3


async def test_a_late_timer_does_not_hold_back_a_leading_edge(settings):
    # A busy loop runs the room's timer late: a window has passed, nothing waits,
    # so the next notice goes at once and the room still has one timer.
    settings.SESSION_NOTICE_WINDOW = 0.2
    sent = Sent()
    c = NoticeCoalescer(send=sent, online=lambda sid: {1, 2})
    await c.tell(5, joined(1))
    late = c.rooms[5].timer
    c.rooms[5].last_flush -= 1  # as if the loop had been busy for a second
    await c.tell(5, joined(2))
    assert len(sent.frames) == 2
    assert late.cancelled() and not c.rooms[5].timer.cancelled()
    await settled(c)


async def test_a_stale_change_is_dropped_at_the_flush(settings):
    settings.SESSION_NOTICE_WINDOW = 0.05
    sent = Sent()
    c = NoticeCoalescer(send=sent, online=lambda sid: {1})
    await c.tell(5, joined(1))
    await c.tell(5, left(1))  # 1 came back (elsewhere) before the flush
    await c.tell(5, joined(2))  # 2 went before the flush
    await settled(c)
    assert len(sent.frames) == 1


async def test_a_failing_flush_is_logged_and_the_next_one_works(settings, caplog):
    settings.SESSION_NOTICE_WINDOW = 0.05
    sent = Sent()
    c = NoticeCoalescer(send=sent, online=lambda sid: {1, 2, 3})
    await c.tell(5, joined(1))
    sent.fail = True
    await c.tell(5, joined(2))
    await settled(c)
    assert "session 5: 1 presence notices not sent" in caplog.text
    sent.fail = False
    await c.tell(5, joined(3))
    assert sent.frames[-1][1]["payload"] == person(3)


async def test_a_rename_while_waiting_is_what_the_flush_tells(settings):
    settings.SESSION_NOTICE_WINDOW = 0.05
    sent = Sent()
    online = {1: person(1), 2: person(2)}
    c = NoticeCoalescer(send=sent, online=lambda sid: online)
    await c.tell(5, joined(1))
    await c.tell(5, joined(2, nickname="old"))
    online[2] = person(2, "new")  # participant.updated went out meanwhile
    await settled(c)
    assert sent.frames[-1][1]["payload"] == {**person(2, "new"), "online_count": 2}


async def test_rooms_below_the_threshold_are_told_at_once(settings):
    settings.SESSION_NOTICE_WINDOW = 30
    settings.SESSION_NOTICE_COALESCE_FROM = 10
    sent = Sent()
    c = NoticeCoalescer(send=sent, online=lambda sid: {1, 2, 3})
    for pid in (1, 2, 3):
        await c.tell(5, joined(pid), room_size=pid + 1)
    assert [f["payload"]["participant_id"] for _, f, _ in sent.frames] == [1, 2, 3]
    await c.tell(5, joined(4), room_size=10)  # big now: the leading edge...
    await c.tell(5, joined(5), room_size=11)  # ...then the window
    await c.tell(5, joined(6), room_size=9)  # small again, but 5 waits: so does 6
    assert len(sent.frames) == 4 and pending_of(c, 5) == [5, 6]


def pending_of(c: NoticeCoalescer, session_id: int) -> list[int]:
    return [n.participant_id for n in c.rooms[session_id].pending]


async def test_window_zero_sends_each_notice_at_once(settings):
    settings.SESSION_NOTICE_WINDOW = 0
    sent = Sent()
    c = NoticeCoalescer(send=sent, online=lambda sid: set())
    for notice in (joined(1), joined(2), left(1, mark=1)):
        await c.tell(5, notice)
    assert [(f["type"], ex) for _, f, ex in sent.frames] == [
        (JOINED, "c1"),
        (JOINED, "c2"),
        (LEFT, "c1"),
    ]
    assert not c.rooms


async def test_one_coalescer_per_event_loop():
    assert notices.coalescer() is notices.coalescer()
    assert notices.coalescer().may_cancel  # no REDIS_URL in tests: one process
