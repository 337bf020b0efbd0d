"""Ordered delivery across processes, presence and status on live sockets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from realtime.broadcast import broadcast
from realtime.groups import session_group
from realtime.protocol import encode_frame
from sessions_app import notify, services
from sessions_app.models import Participant
from tests.conftest import access_token, closed_with
from tests.sessions.conftest import (
    connect,
    create_session,
    disconnect_all,
    guest,
    join,
    nothing_of,
    of_type,
    send,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def store(session, participant, content):
    """A message stored without being broadcast (as if its broadcast were late)."""
    message, _ = await sync_to_async(services.message_post)(
        session_id=session.pk, participant=participant, content=content
    )
    return message


async def participant(pid):
    return await sync_to_async(Participant.objects.get)(pk=pid)


async def test_frames_from_another_process_wait_for_their_turn(host, settings):
    # Whether the broadcast or the database fills the hole first, the order holds.
    settings.SESSION_GAP_WAIT = 0.3
    session = await create_session(host)
    pid, token = await guest(session, "reader")
    reader, _ = await join(session.code, token)
    author = await participant(pid)
    m1, m2, m3 = [await store(session, author, f"m{i}") for i in (1, 2, 3)]
    await notify.message_stored(m3)
    await notify.message_stored(m2)
    await nothing_of(reader, "chat.message", wait=0.2)
    await notify.message_stored(m1)
    got = await of_type(reader, "chat.message", 3)
    assert [m["seq"] for m in got] == [1, 2, 3]
    await notify.message_stored(m2)  # a duplicate broadcast is dropped
    await nothing_of(reader, "chat.message", wait=0.2)
    await reader.disconnect()


async def test_a_lost_broadcast_is_read_from_the_database(host, settings):
    settings.SESSION_GAP_WAIT = 0.05
    session = await create_session(host)
    pid, token = await guest(session, "reader")
    reader, _ = await join(session.code, token)
    author = await participant(pid)
    await store(session, author, "lost")
    m2 = await store(session, author, "arrived")
    await notify.message_stored(m2)
    got = await of_type(reader, "chat.message", 2)
    assert [(m["seq"], m["content"]) for m in got] == [(1, "lost"), (2, "arrived")]
    await reader.disconnect()


async def test_a_hole_nobody_has_is_skipped_not_waited_on_forever(host, settings):
    settings.SESSION_GAP_WAIT = 0.05
    session = await create_session(host)
    _, token = await guest(session, "reader")
    reader, _ = await join(session.code, token)
    text = encode_frame("chat.message", {"seq": 3, "content": "from nowhere"})
    await broadcast(session_group(session.pk), text, seq=3)
    (got,) = await of_type(reader, "chat.message", 1)
    assert got["seq"] == 3
    await reader.disconnect()


def api_status(code: str, token: str) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    reply = client.get(f"/api/sessions/{code}/status/")
    assert reply.status_code == 200, reply.content
    return reply.json()


async def status_of(code: str, token: str) -> dict:
    return await sync_to_async(api_status)(code, token)


async def test_status_counts_follow_connects_and_disconnects(host):
    session = await create_session(host)
    host_token = access_token(host)
    pid_a, token_a = await guest(session, "ann")
    pid_b, token_b = await guest(session, "bob")
    status = await status_of(session.code, host_token)
    assert status["session_code"] == session.code
    assert status["status"] == "open"
    assert status["online_participants"] == []
    assert status["online_count"] == 0
    assert status["total_participants"] == 3  # host + two guests, none online
    a1, _ = await join(session.code, token_a)
    a2, _ = await join(session.code, token_a)
    status = await status_of(session.code, host_token)
    assert status["online_participants"] == [
        {"participant_id": pid_a, "nickname": "ann", "role": "guest"}
    ]
    assert status["online_count"] == 1 and status["online_connections"] == 2
    b, _ = await join(session.code, token_b)
    status = await status_of(session.code, host_token)
    assert status["online_count"] == 2
    assert {p["participant_id"] for p in status["online_participants"]} == {
        pid_a,
        pid_b,
    }
    await b.disconnect()
    await a1.disconnect()
    status = await status_of(session.code, host_token)
    assert status["online_count"] == 1 and status["online_connections"] == 1
    await a2.disconnect()
    status = await status_of(session.code, host_token)
    assert status["online_count"] == 0 and status["total_participants"] == 3
    last_seen = await sync_to_async(
        lambda: Participant.objects.get(pk=pid_a).last_seen
    )()
    assert last_seen is not None


async def answer_pings(comm, seconds: float) -> None:
    """Play a live client for a while: answer the server's heartbeat pings."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if comm.output_queue.empty():
            await asyncio.sleep(0.02)
            continue
        message = comm.output_queue.get_nowait()
        frame = json.loads(message.get("text") or "{}")
        if frame.get("type") == "ping":
            await send(comm, "pong", {"nonce": frame["payload"]["nonce"]})


async def test_a_vanished_connection_leaves_status_after_the_presence_ttl(
    host, settings
):
    # A live socket's heartbeat refreshes its presence every ~0.1 s; one that
    # vanished without a close is never refreshed and expires after the TTL.
    settings.HEARTBEAT_INTERVAL = 0.1
    settings.PONG_TIMEOUT = 5
    settings.PRESENCE_TTL = 2
    session = await create_session(host)
    pid_a, token_a = await guest(session, "alive")
    _, token_b = await guest(session, "vanishes")
    a, _ = await join(session.code, token_a)
    before_b = time.monotonic()  # b's presence entry is set after this
    b, _ = await join(session.code, token_b)
    assert (await status_of(session.code, access_token(host)))["online_count"] == 2
    # b goes silent (a phone in a tunnel): no close, no pong; the server has not
    # noticed yet (the heartbeat gives up only after 3 x 5 s), but its presence is no
    # longer refreshed. (A killed server: tests/e2e/test_sessions_e2e.py.)
    deadline = time.monotonic() + 15
    while True:
        status = await status_of(session.code, access_token(host))
        ids = [p["participant_id"] for p in status["online_participants"]]
        if ids == [pid_a]:
            break
        assert len(ids) == 2, status  # never both gone: the live one stays
        assert time.monotonic() < deadline, status
        await answer_pings(a, 0.1)
    assert time.monotonic() - before_b >= 1.9  # not before the TTL
    assert status["online_count"] == 1 and status["online_connections"] == 1
    await disconnect_all(a, b)


async def test_host_actions_from_rest_reach_the_sockets(host):
    session = await create_session(host)
    _, token = await guest(session, "g")
    comm, _ = await join(session.code, token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(host)}")
    url = f"/api/sessions/{session.code}/"
    reply = await sync_to_async(client.patch)(
        url, {"title": "Renamed", "moderated": True}, format="json"
    )
    assert reply.status_code == 200
    (updated,) = await of_type(comm, "session.updated", 1)
    assert updated == {
        "code": session.code,
        "title": "Renamed",
        "status": "open",
        "moderated": True,
    }
    reply = await sync_to_async(client.patch)(url, {"status": "closed"}, format="json")
    assert reply.status_code == 200 and reply.json()["status"] == "closed"
    assert (await of_type(comm, "session.closed", 1))[0]["code"] == session.code
    assert await closed_with(comm) == 4010
    await comm.disconnect()


async def test_deleting_a_session_closes_its_sockets(host):
    session = await create_session(host)
    _, token = await guest(session, "g")
    comm, _ = await join(session.code, token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(host)}")
    reply = await sync_to_async(client.delete)(f"/api/sessions/{session.code}/")
    assert reply.status_code == 204
    assert await closed_with(comm) == 4010
    await comm.disconnect()
    again = await connect(session.code, token=token)
    assert await closed_with(again) == 4004
    await again.disconnect()
