"""Groups, rooms, binary frames and failure paths of EnvelopeConsumer."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from realtime import presence
from realtime.consumers import EnvelopeConsumer
from realtime.groups import session_group, stream_group, user_group
from tests.conftest import closed_with, recv, recv_type, send
from tests.realtime.toolkit_consumer import ToolkitConsumer, application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


def comm_for(token: str, query: str = "") -> WebsocketCommunicator:
    path = f"/ws/toolkit/?token={token}" + (f"&{query}" if query else "")
    return WebsocketCommunicator(application, path)


async def joined(token: str, query: str = "") -> WebsocketCommunicator:
    comm = comm_for(token, query)
    assert (await comm.connect())[0]
    assert (await recv(comm))["type"] == "hello"
    return comm


async def test_broadcast_reaches_the_group_once_serialised(token):
    a, b = await joined(token, "nick=a"), await joined(token, "nick=b")
    await send(a, "room.say", {"text": "hi"})
    for comm in (a, b):
        said = await recv_type(comm, "room.said")
        assert said["payload"] == {"text": "hi"}
    await send(a, "room.say", {"text": "to others", "others_only": True})
    assert (await recv_type(b, "room.said"))["payload"]["text"] == "to others"
    await send(a, "ping", {})
    assert (await recv(a))["type"] == "pong"  # a did not get its own frame
    members = presence.room_members(session_group("toolkit"))
    assert sorted(m["nickname"] for m in members.values()) == ["a", "b"]
    await a.disconnect()
    await b.disconnect()
    assert presence.room_members(session_group("toolkit")) == {}


async def test_left_group_gets_nothing_more(token):
    a, b = await joined(token), await joined(token)
    await send(b, "room.leave", {})
    assert (await recv(b))["type"] == "room.left"
    await send(a, "room.say", {"text": "x"})
    await recv_type(a, "room.said")
    assert await b.receive_nothing(timeout=0.3)
    await a.disconnect()
    await b.disconnect()


async def test_close_group_closes_everyone_but_the_sender(token):
    a, b, c = await joined(token), await joined(token), await joined(token)
    await send(a, "room.kick", {"code": 4010})
    assert await closed_with(b) == 4010
    assert await closed_with(c) == 4010
    await send(a, "ping", {})
    assert (await recv(a))["type"] == "pong"
    for comm in (a, b, c):
        await comm.disconnect()


async def test_connect_time_decisions(token):
    comm = comm_for(token, "reject=4005")
    assert (await comm.connect())[0]
    assert await closed_with(comm) == 4005
    await comm.disconnect()
    comm = comm_for(token, "crash=1")
    await comm.connect()
    assert await closed_with(comm) == 4011
    await comm.disconnect()
    comm = comm_for(token, "selfclose=1")
    await comm.connect()
    assert await closed_with(comm) == 4010
    await comm.disconnect()


async def test_handler_may_close_the_connection(token):
    comm = await joined(token)
    await send(comm, "close.me", {"code": 4012})
    assert await closed_with(comm) == 4012
    await send(comm, "ping", {})  # after close: ignored, nothing sent
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_binary_frames_reach_on_binary(token):
    comm = await joined(token)
    await comm.send_to(bytes_data=b"abc")
    assert await comm.receive_from() == b"cba"
    await comm.disconnect()


async def test_callback_timeout_escaping_a_handler_is_quiet(token):
    comm = await joined(token)
    await send(comm, "ask.unhandled", {}, request_id="u-1")
    question = await recv_type(comm, "question")
    timeout = await recv_type(comm, "error")
    assert timeout["payload"]["code"] == "TIMEOUT"
    assert timeout["request_id"] == question["request_id"]
    assert await comm.receive_nothing(timeout=0.3)  # no INTERNAL after it
    await comm.disconnect()


async def test_on_disconnect_failure_is_contained(token):
    ToolkitConsumer.disconnects.clear()
    comm = await joined(token)
    await send(comm, "boom.disconnect", {})
    assert (await recv(comm))["type"] == "armed"
    await comm.disconnect(code=1001)
    assert ToolkitConsumer.disconnects == [1001]
    other = await joined(token)
    await send(other, "ping", {})
    assert (await recv(other))["type"] == "pong"
    await other.disconnect()


async def test_violations_older_than_the_window_are_forgotten(
    token, settings, fake_clock
):
    settings.REALTIME_MAX_VIOLATIONS = 2
    comm = await joined(token)
    for _ in range(2):
        await comm.send_to(text_data="{")
        await recv_type(comm, "error")
    fake_clock.advance(61)  # the two are now outside the 60 s window
    for _ in range(2):
        await comm.send_to(text_data="{")
        await recv_type(comm, "error")
    await send(comm, "ping", {})
    assert (await recv(comm))["type"] == "pong"
    await comm.send_to(text_data="{")
    await recv_type(comm, "error")
    assert await closed_with(comm) == 4029
    await comm.disconnect()


async def test_heartbeat_refreshes_presence_and_groups(token, settings):
    settings.HEARTBEAT_INTERVAL, settings.PONG_TIMEOUT = 0.05, 0.5
    settings.PRESENCE_TTL = 0.3
    settings.REALTIME_GROUP_REFRESH = 0.0
    comm = await joined(token)
    for _ in range(10):  # 10 beats ≈ 0.5 s: longer than the TTL
        ping = await recv_type(comm, "ping")
        await send(comm, "pong", {"nonce": ping["payload"]["nonce"]})
    assert len(presence.room_members(session_group("toolkit"))) == 1
    other = await joined(token)
    await send(other, "room.say", {"text": "still in the group"})
    assert (await recv_type(comm, "room.said"))["payload"]["text"]
    await comm.disconnect()
    await other.disconnect()


def test_a_declared_type_needs_its_handler():
    with pytest.raises(TypeError, match="on_chat_send"):

        class Broken(EnvelopeConsumer):
            messages = {"chat.send": None}


def test_group_names():
    assert session_group(12) == "session.12"
    assert user_group("7") == "user.7"
    assert stream_group("lab-cam_1") == "stream.lab-cam_1"
    for bad in ("", "a b", "x" * 81, "é", "a.b", None, True):
        with pytest.raises(ValueError):
            session_group(bad)


async def test_layer_events_are_not_client_types(token):
    """A client naming a layer event is refused; the layer's own events still work."""
    comm = await joined(token)
    await comm.send_to(text_data=json.dumps({"type": "realtime.close", "payload": {}}))
    assert (await recv(comm))["payload"]["code"] == "UNKNOWN_TYPE"
    await comm.disconnect()
