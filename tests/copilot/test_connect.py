"""Handshake, greeting, heartbeat, single session and users side by side."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from realtime.tokens import scoped_token_issue
from tests.conftest import access_token, closed_with, communicator, recv_type, send
from tests.copilot.helpers import ITEMS, ask, open_copilot, read_answer, reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def test_no_credential_closes_4008():
    comm = communicator("/ws/copilot/")
    connected, _ = await comm.connect()
    assert connected  # accepted first, so the client sees the code
    assert await closed_with(comm) == 4008
    await comm.disconnect()


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", "x" * 10_000])
async def test_garbage_credential_closes_4001(bad):
    comm = communicator("/ws/copilot/?token=" + bad)
    await comm.connect()
    assert await closed_with(comm) == 4001
    await comm.disconnect()


async def test_expired_token_closes_4001(user):
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=timedelta(seconds=-5))
    comm = communicator("/ws/copilot/", token=str(expired))
    await comm.connect()
    assert await closed_with(comm) == 4001
    await comm.disconnect()


async def test_bearer_header_is_accepted(token):
    comm = communicator("/ws/copilot/", bearer=token)
    await comm.connect()
    assert (await recv_type(comm, "connected"))["type"] == "connected"
    await comm.disconnect()


async def test_guest_token_is_refused_4005():
    guest = scoped_token_issue({"session": "ABC", "participant_id": 1}, ttl=60)
    comm = communicator("/ws/copilot/", token=guest)
    await comm.connect()
    assert await closed_with(comm) == 4005
    await comm.disconnect()


async def test_valid_token_gets_connected_greeting(user, token, settings):
    settings.COPILOT_RATE_LIMIT, settings.COPILOT_RATE_WINDOW = 10, 60
    settings.HEARTBEAT_INTERVAL, settings.PONG_TIMEOUT = 30, 10
    comm, greeting = await open_copilot(token)
    payload = greeting["payload"]
    assert payload["user_id"] == user.pk
    assert len(payload["connection_id"]) == 16
    assert payload["heartbeat"] == {"interval": 30.0, "timeout": 10.0, "max_missed": 3}
    assert payload["rate_limit"] == {"limit": 10, "window": 60.0, "remaining": 10}
    assert payload["resume_ttl"] == 120
    assert greeting["timestamp"].endswith("Z")
    await comm.disconnect()


async def test_bad_agent_setting_closes_4011(token, settings):
    settings.COPILOT_AGENT = "realtime.copilot.nowhere.Agent"
    comm = communicator("/ws/copilot/", token=token)
    await comm.connect()
    assert await closed_with(comm) == 4011
    await comm.disconnect()


async def test_heartbeat_closes_a_silent_client_4003(token, settings):
    settings.HEARTBEAT_INTERVAL, settings.PONG_TIMEOUT = 0.1, 0.1
    settings.MAX_MISSED_PONGS = 3
    comm, greeting = await open_copilot(token)
    assert greeting["payload"]["heartbeat"]["max_missed"] == 3
    pings = 0
    while True:
        output = await comm.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            break
        assert json.loads(output["text"])["type"] == "ping"
        pings += 1
    assert output["code"] == 4003
    assert pings == 3
    await comm.disconnect()


async def test_heartbeat_keeps_a_client_that_answers(token, settings):
    settings.HEARTBEAT_INTERVAL, settings.PONG_TIMEOUT = 0.1, 0.1
    comm, _ = await open_copilot(token)
    for _ in range(8):  # well past three missed pongs' worth of time
        ping = await recv_type(comm, "ping")
        await send(comm, "pong", {"nonce": ping["payload"]["nonce"]})
    await send(comm, "ping", {"still": "here"})
    assert (await recv_type(comm, "pong"))["payload"] == {"still": "here"}
    await comm.disconnect()


async def test_single_session_closes_the_older_socket_4009(token, settings):
    settings.SINGLE_SESSION_PER_USER = True
    old, _ = await open_copilot(token)
    new, _ = await open_copilot(token)
    assert await closed_with(old) == 4009
    await send(new, "ping", {"n": 1})
    assert (await recv_type(new, "pong"))["payload"] == {"n": 1}
    await old.disconnect()
    await new.disconnect()


async def test_several_sockets_allowed_without_single_session(token, settings):
    settings.SINGLE_SESSION_PER_USER = False
    first, _ = await open_copilot(token)
    second, _ = await open_copilot(token)
    for comm in (first, second):
        await send(comm, "ping", {})
        assert (await recv_type(comm, "pong"))["type"] == "pong"
    await first.disconnect()
    await second.disconnect()


async def test_single_session_leaves_other_users_alone(make_user, settings):
    settings.SINGLE_SESSION_PER_USER = True
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    a, _ = await open_copilot(access_token(alice))
    b, _ = await open_copilot(access_token(bob))
    await send(a, "ping", {"who": "a"})
    assert (await recv_type(a, "pong"))["payload"] == {"who": "a"}
    await a.disconnect()
    await b.disconnect()


async def _full_answer(comm, text: str, api_body: dict) -> tuple[str, dict]:
    query_id = await ask(comm, text)
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": ITEMS})
    api = await recv_type(comm, "request_api")
    await reply(comm, api, "api_result", {"status": 200, "body": api_body})
    _, response = await read_answer(comm, query_id)
    return query_id, response


async def test_two_users_at_once_get_independent_answers(make_user):
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    a, _ = await open_copilot(access_token(alice))
    b, _ = await open_copilot(access_token(bob))
    (qa, ra), (qb, rb) = await asyncio.gather(
        _full_answer(a, "monthly_costs please", {"records": [{"x": 1}]}),
        _full_answer(b, "count my instances", {"records": [{"id": 1}, {"id": 2}]}),
    )
    assert qa != qb
    assert ra["text"] == "monthly_costs (/local/costs) holds 1 record with fields x."
    assert rb["text"] == (
        "instances (/local/instances) holds 2 records with fields id."
    )
    await a.disconnect()
    await b.disconnect()


async def test_one_user_disconnecting_does_not_disturb_another(make_user):
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    a, _ = await open_copilot(access_token(alice))
    b, _ = await open_copilot(access_token(bob))
    await ask(a, "monthly_costs")
    await recv_type(a, "request_available_data")
    qb = await ask(b, "monthly_costs")
    request = await recv_type(b, "request_available_data")
    await a.disconnect()  # mid-query
    await reply(b, request, "available_data", {"items": ITEMS})
    api = await recv_type(b, "request_api")
    await reply(b, api, "api_result", {"status": 200, "body": []})
    _, response = await read_answer(b, qb)
    assert response["text"] == "monthly_costs (/local/costs) holds 0 records."
    await b.disconnect()
