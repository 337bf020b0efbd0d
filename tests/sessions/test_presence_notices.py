"""Joins and leaves as the clients of a room see them, with a short notice window.

A client keeps who is online in a map by participant id: its welcome's ``online``,
then each notice applied idempotently (``apply``). Whatever the timing, every client
must end with the room as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import pytest
from channels.testing import WebsocketCommunicator

from sessions_app import notices
from sessions_app.models import Session
from sessions_app.notices import CHANGED, JOINED, LEFT
from tests.conftest import recv
from tests.sessions.conftest import (
    create_session,
    disconnect_all,
    frames_until,
    guest,
    join,
    nothing_of,
    of_type,
    settled,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def coalesce_any_room(settings):
    """These tests are about coalescing: let it start with the second person."""
    settings.SESSION_NOTICE_COALESCE_FROM = 0


def apply(online: dict[int, dict], frame: dict) -> None:
    """What a client does with a notice."""
    payload = frame["payload"]
    if frame["type"] == JOINED:
        online[payload["participant_id"]] = payload
    elif frame["type"] == LEFT:
        online.pop(payload["participant_id"], None)
    elif frame["type"] == CHANGED:
        for someone in payload["joined"]:
            online[someone["participant_id"]] = someone
        for someone in payload["left"]:
            online.pop(someone["participant_id"], None)


def online_of(welcome: dict) -> dict[int, dict]:
    return {p["participant_id"]: p for p in welcome["online"]}


def drain(comm) -> list[dict]:
    """Every frame already sent to ``comm``, without waiting (call once settled)."""
    frames = []
    while not comm.output_queue.empty():
        message = comm.output_queue.get_nowait()
        if message["type"] == "websocket.send":
            frames.append(json.loads(message["text"]))
    return frames


def notices_in(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] in (JOINED, LEFT, CHANGED)]


def ids_joined(frames: list[dict]) -> list[int]:
    ids = []
    for frame in frames:
        if frame["type"] == JOINED:
            ids.append(frame["payload"]["participant_id"])
        elif frame["type"] == CHANGED:
            ids += [p["participant_id"] for p in frame["payload"]["joined"]]
    return ids


def ids_named(frames: list[dict]) -> list[int]:
    """Every participant a notice names, joined or left."""
    ids = []
    for frame in notices_in(frames):
        payload = frame["payload"]
        if frame["type"] == CHANGED:
            ids += [p["participant_id"] for p in payload["joined"] + payload["left"]]
        else:
            ids.append(payload["participant_id"])
    return ids


def pending_ids(session) -> list[int]:
    room = notices.coalescer().rooms.get(session.pk)
    return [n.participant_id for n in room.pending] if room else []


def online_after(welcome: dict, frames: list[dict]) -> dict[int, dict]:
    """Who a client holds online: its welcome's ``online``, then ``frames`` applied."""
    online = online_of(welcome)
    for frame in frames:
        apply(online, frame)
    return online


async def drain_settled(comm) -> list[dict]:
    """Every frame sent to ``comm`` once every pending notice was sent."""
    await settled()
    return drain(comm)


def numbered(count: int) -> list[str]:
    """Nicknames for a crowd: g0, g1, ..."""
    return [f"g{i}" for i in range(count)]


@dataclass
class Watched:
    """A session whose guest "watcher" is connected, and its other guests."""

    session: Session
    watcher: WebsocketCommunicator
    watcher_pid: int
    watcher_welcome: dict
    guests: list[tuple[int, str]]  # (participant_id, token), not yet connected

    async def join(self, token: str):
        return await join(self.session.code, token)

    async def join_all(self) -> list:
        """Every guest connects at once: a join storm."""
        return await asyncio.gather(*(self.join(token) for _, token in self.guests))

    async def until_told_joined(self, pids: set[int]) -> list[dict]:
        """The watcher's frames until every one of ``pids`` was told joined."""
        return await frames_until(
            self.watcher, lambda got: set(ids_joined(got)) >= pids
        )


async def watched_session(host, *nicknames: str) -> Watched:
    """A new session: the guest "watcher" connected, then guests ``nicknames``."""
    session = await create_session(host)
    watcher_pid, watcher_token = await guest(session, "watcher")
    guests = [await guest(session, name) for name in nicknames]
    watcher, watcher_welcome = await join(session.code, watcher_token)
    return Watched(session, watcher, watcher_pid, watcher_welcome, guests)


async def test_a_quiet_room_hears_a_join_at_once(host, settings):
    settings.SESSION_NOTICE_WINDOW = 30  # a batch would wait half a minute
    room = await watched_session(host, "ann")
    [(pid, token)] = room.guests
    ann, _ = await room.join(token)
    frame = await recv(room.watcher, timeout=2)
    assert frame["type"] == JOINED
    assert frame["payload"] == {
        "participant_id": pid,
        "nickname": "ann",
        "role": "guest",
        "online_count": 2,
    }
    await disconnect_all(ann, room.watcher)


async def test_a_small_room_hears_every_join_alone_even_in_a_storm(host, settings):
    settings.SESSION_NOTICE_WINDOW = 30
    settings.SESSION_NOTICE_COALESCE_FROM = 100  # the default: PROTOCOL §5 as written
    room = await watched_session(host, *numbered(6))
    joins = await room.join_all()
    pids = {pid for pid, _ in room.guests}
    told = notices_in(await room.until_told_joined(pids))
    assert [f["type"] for f in told] == [JOINED] * len(pids)
    assert sorted(ids_joined(told)) == sorted(pids)
    await disconnect_all(room.watcher, *(comm for comm, _ in joins))


async def test_a_join_storm_is_told_in_few_frames_each_joiner_once(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0.2
    room = await watched_session(host, *numbered(12))
    joins = await room.join_all()
    pids = {pid for pid, _ in room.guests}
    frames = await room.until_told_joined(pids)
    told = notices_in(frames + await drain_settled(room.watcher))
    assert sorted(ids_joined(told)) == sorted(pids)  # each joiner once
    assert all(f["type"] != LEFT for f in told)
    assert len(told) < len(pids)
    assert any(f["type"] == CHANGED for f in told)
    # Every joiner, whatever its welcome listed, ends up with the whole room.
    for comm, welcome in joins:
        online = online_after(welcome, drain(comm))
        assert set(online) == pids | {room.watcher_pid}
    await disconnect_all(room.watcher, *(comm for comm, _ in joins))


async def test_join_then_leave_within_a_window_is_not_told(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0.5
    room = await watched_session(host, "ann", "brief", "bob")
    watcher = room.watcher
    (_, ann_token), (brief_pid, brief_token), (bob_pid, bob_token) = room.guests
    ann, _ = await room.join(ann_token)
    await of_type(watcher, JOINED, 1)  # the leading edge: a window starts
    brief, _ = await room.join(brief_token)
    await brief.disconnect()
    assert pending_ids(room.session) == [brief_pid, brief_pid]  # both in one window
    bob, _ = await room.join(bob_token)  # after brief left: saw nothing
    frames = await frames_until(watcher, lambda got: bob_pid in ids_joined(got))
    frames += await drain_settled(watcher)
    assert [f["type"] for f in notices_in(frames)] == [JOINED]  # bob, alone
    assert brief_pid not in ids_named(frames)
    await disconnect_all(watcher, ann, bob)


async def test_a_come_and_go_that_a_welcome_saw_is_told(host, settings):
    # rita's welcome lists brief, who leaves within the same window: rita must hear
    # of it, so that join and leave do not cancel out.
    settings.SESSION_NOTICE_WINDOW = 0.5
    room = await watched_session(host, "ann", "brief", "rita")
    watcher = room.watcher
    (_, ann_token), (brief_pid, brief_token), (rita_pid, rita_token) = room.guests
    ann, _ = await room.join(ann_token)
    seen = await frames_until(watcher, lambda got: got)  # ann, at once
    brief, _ = await room.join(brief_token)
    rita, rita_welcome = await room.join(rita_token)
    assert brief_pid in online_of(rita_welcome)
    await brief.disconnect()
    assert pending_ids(room.session) == [brief_pid, rita_pid, brief_pid]
    seen += await frames_until(watcher, lambda got: got and got[-1]["type"] == CHANGED)
    changed = seen[-1]["payload"]
    assert [p["participant_id"] for p in changed["joined"]] == [rita_pid]
    assert [p["participant_id"] for p in changed["left"]] == [brief_pid]
    await settled()
    for welcome, frames in (
        (rita_welcome, drain(rita)),
        (room.watcher_welcome, seen + drain(watcher)),
    ):
        online = online_after(welcome, frames)
        assert brief_pid not in online and rita_pid in online
    await disconnect_all(watcher, ann, rita)


async def test_a_reconnect_within_a_window_is_not_told(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0.5
    room = await watched_session(host, "ann", "flaky")
    watcher = room.watcher
    (_, ann_token), (pid, token) = room.guests
    flaky, _ = await room.join(token)
    await of_type(watcher, JOINED, 1)  # flaky, at once: a window starts
    await flaky.disconnect()
    flaky, _ = await room.join(token)
    assert pending_ids(room.session) == [pid, pid]
    ann, _ = await room.join(ann_token)  # the marker
    (told,) = await of_type(watcher, JOINED, 1)
    assert told["nickname"] == "ann"
    assert pid not in ids_named(await drain_settled(watcher))
    await disconnect_all(watcher, flaky, ann)


async def test_a_second_tab_is_not_told_within_a_window_either(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0.2
    room = await watched_session(host, "ann", "twotabs")
    watcher = room.watcher
    (_, ann_token), (pid, token) = room.guests
    ann, _ = await room.join(ann_token)
    await of_type(watcher, JOINED, 1)
    tab1, _ = await room.join(token)
    tab2, _ = await room.join(token)
    (told,) = await of_type(watcher, JOINED, 1)
    assert told["participant_id"] == pid
    await tab1.disconnect()
    assert pid not in ids_named(await drain_settled(watcher))  # still here in tab 2
    await tab2.disconnect()
    (gone,) = await of_type(watcher, LEFT, 1)
    assert gone["participant_id"] == pid
    assert not notices_in(await drain_settled(watcher))
    await disconnect_all(watcher, ann)


async def test_window_zero_tells_every_join_and_leave_alone(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0
    room = await watched_session(host, *numbered(5))
    watcher, people = room.watcher, room.guests
    comms = [(await room.join(token))[0] for _, token in people]
    told = await of_type(watcher, JOINED, 5, timeout=2)
    assert [p["participant_id"] for p in told] == [pid for pid, _ in people]
    await disconnect_all(*comms)
    gone = await of_type(watcher, LEFT, 5, timeout=2)
    assert [p["participant_id"] for p in gone] == [pid for pid, _ in people]
    await nothing_of(watcher, CHANGED, wait=0.1)
    assert not notices.coalescer().rooms
    await watcher.disconnect()


async def test_a_flush_after_everyone_left_is_harmless(host, settings, caplog):
    caplog.set_level(logging.WARNING)
    settings.SESSION_NOTICE_WINDOW = 0.5
    session = await create_session(host)
    comms = []
    for name in ("ann", "bob", "cy", "dee"):
        _, token = await guest(session, name)
        comms.append((await join(session.code, token))[0])
    await disconnect_all(*comms)
    assert pending_ids(session)  # cy's and dee's joins, the leaves: not sent yet
    await settled()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
