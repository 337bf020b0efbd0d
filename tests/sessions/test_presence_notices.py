"""Joins and leaves as the clients of a room see them, with a short notice window.

A client keeps who is online in a map by participant id: its welcome's ``online``,
then each notice applied idempotently (``apply``). Whatever the timing, every client
must end with the room as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from sessions_app import notices
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


async def test_a_quiet_room_hears_a_join_at_once(host, settings):
    settings.SESSION_NOTICE_WINDOW = 30  # a batch would wait half a minute
    session = await create_session(host)
    _, watcher_token = await guest(session, "watcher")
    pid, token = await guest(session, "ann")
    watcher, _ = await join(session.code, watcher_token)
    ann, _ = await join(session.code, token)
    frame = await recv(watcher, timeout=2)
    assert frame["type"] == JOINED
    assert frame["payload"] == {
        "participant_id": pid,
        "nickname": "ann",
        "role": "guest",
        "online_count": 2,
    }
    await disconnect_all(ann, watcher)


async def test_a_small_room_hears_every_join_alone_even_in_a_storm(host, settings):
    settings.SESSION_NOTICE_WINDOW = 30
    settings.SESSION_NOTICE_COALESCE_FROM = 100  # the default: PROTOCOL §5 as written
    session = await create_session(host)
    _, watcher_token = await guest(session, "watcher")
    people = [await guest(session, f"g{i}") for i in range(6)]
    watcher, _ = await join(session.code, watcher_token)
    joins = await asyncio.gather(*(join(session.code, token) for _, token in people))
    pids = {pid for pid, _ in people}
    frames = await frames_until(watcher, lambda got: set(ids_joined(got)) >= pids)
    told = notices_in(frames)
    assert [f["type"] for f in told] == [JOINED] * len(pids)
    assert sorted(ids_joined(told)) == sorted(pids)
    await disconnect_all(watcher, *(comm for comm, _ in joins))


async def test_a_join_storm_is_told_in_few_frames_each_joiner_once(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0.2
    session = await create_session(host)
    watcher_pid, watcher_token = await guest(session, "watcher")
    people = [await guest(session, f"g{i}") for i in range(12)]
    watcher, _ = await join(session.code, watcher_token)
    joins = await asyncio.gather(*(join(session.code, token) for _, token in people))
    pids = {pid for pid, _ in people}
    frames = await frames_until(watcher, lambda got: set(ids_joined(got)) >= pids)
    await settled()
    told = notices_in(frames + drain(watcher))
    assert sorted(ids_joined(told)) == sorted(pids)  # each joiner once
    assert all(f["type"] != LEFT for f in told)
    assert len(told) < len(pids)
    assert any(f["type"] == CHANGED for f in told)
    # Every joiner, whatever its welcome listed, ends up with the whole room.
    for comm, welcome in joins:
        online = online_of(welcome)
        for frame in drain(comm):
            apply(online, frame)
        assert set(online) == pids | {watcher_pid}
    await disconnect_all(watcher, *(comm for comm, _ in joins))


async def test_join_then_leave_within_a_window_is_not_told(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0.5
    session = await create_session(host)
    _, watcher_token = await guest(session, "watcher")
    _, ann_token = await guest(session, "ann")
    brief_pid, brief_token = await guest(session, "brief")
    bob_pid, bob_token = await guest(session, "bob")
    watcher, _ = await join(session.code, watcher_token)
    ann, _ = await join(session.code, ann_token)
    await of_type(watcher, JOINED, 1)  # the leading edge: a window starts
    brief, _ = await join(session.code, brief_token)
    await brief.disconnect()
    assert pending_ids(session) == [brief_pid, brief_pid]  # both in one window
    bob, _ = await join(session.code, bob_token)  # after brief left: saw nothing
    frames = await frames_until(watcher, lambda got: bob_pid in ids_joined(got))
    await settled()
    frames += drain(watcher)
    assert [f["type"] for f in notices_in(frames)] == [JOINED]  # bob, alone
    assert brief_pid not in ids_named(frames)
    await disconnect_all(watcher, ann, bob)


async def test_a_come_and_go_that_a_welcome_saw_is_told(host, settings):
    # rita's welcome lists brief, who leaves within the same window: rita must hear
    # of it, so that join and leave do not cancel out.
    settings.SESSION_NOTICE_WINDOW = 0.5
    session = await create_session(host)
    _, watcher_token = await guest(session, "watcher")
    _, ann_token = await guest(session, "ann")
    brief_pid, brief_token = await guest(session, "brief")
    rita_pid, rita_token = await guest(session, "rita")
    watcher, watcher_welcome = await join(session.code, watcher_token)
    ann, _ = await join(session.code, ann_token)
    seen = await frames_until(watcher, lambda got: got)  # ann, at once
    brief, _ = await join(session.code, brief_token)
    rita, rita_welcome = await join(session.code, rita_token)
    assert brief_pid in online_of(rita_welcome)
    await brief.disconnect()
    assert pending_ids(session) == [brief_pid, rita_pid, brief_pid]
    seen += await frames_until(watcher, lambda got: got and got[-1]["type"] == CHANGED)
    changed = seen[-1]["payload"]
    assert [p["participant_id"] for p in changed["joined"]] == [rita_pid]
    assert [p["participant_id"] for p in changed["left"]] == [brief_pid]
    await settled()
    for welcome, frames in (
        (rita_welcome, drain(rita)),
        (watcher_welcome, seen + drain(watcher)),
    ):
        online = online_of(welcome)
        for frame in frames:
            apply(online, frame)
        assert brief_pid not in online and rita_pid in online
    await disconnect_all(watcher, ann, rita)


async def test_a_reconnect_within_a_window_is_not_told(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0.5
    session = await create_session(host)
    _, watcher_token = await guest(session, "watcher")
    _, ann_token = await guest(session, "ann")
    pid, token = await guest(session, "flaky")
    watcher, _ = await join(session.code, watcher_token)
    flaky, _ = await join(session.code, token)
    await of_type(watcher, JOINED, 1)  # flaky, at once: a window starts
    await flaky.disconnect()
    flaky, _ = await join(session.code, token)
    assert pending_ids(session) == [pid, pid]
    ann, _ = await join(session.code, ann_token)  # the marker
    (told,) = await of_type(watcher, JOINED, 1)
    assert told["nickname"] == "ann"
    await settled()
    assert pid not in ids_named(drain(watcher))
    await disconnect_all(watcher, flaky, ann)


async def test_a_second_tab_is_not_told_within_a_window_either(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0.2
    session = await create_session(host)
    _, watcher_token = await guest(session, "watcher")
    _, ann_token = await guest(session, "ann")
    pid, token = await guest(session, "twotabs")
    watcher, _ = await join(session.code, watcher_token)
    ann, _ = await join(session.code, ann_token)
    await of_type(watcher, JOINED, 1)
    tab1, _ = await join(session.code, token)
    tab2, _ = await join(session.code, token)
    (told,) = await of_type(watcher, JOINED, 1)
    assert told["participant_id"] == pid
    await tab1.disconnect()
    await settled()
    assert pid not in ids_named(drain(watcher))  # still here in tab 2
    await tab2.disconnect()
    (gone,) = await of_type(watcher, LEFT, 1)
    assert gone["participant_id"] == pid
    await settled()
    assert not notices_in(drain(watcher))
    await disconnect_all(watcher, ann)


async def test_window_zero_tells_every_join_and_leave_alone(host, settings):
    settings.SESSION_NOTICE_WINDOW = 0
    session = await create_session(host)
    _, watcher_token = await guest(session, "watcher")
    people = [await guest(session, f"g{i}") for i in range(5)]
    watcher, _ = await join(session.code, watcher_token)
    comms = [(await join(session.code, token))[0] for _, token in people]
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
