"""EnvelopeConsumer through config.asgi.application, on the diagnostic /ws/echo/."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from realtime.protocol import decode_server_frame
from tests.conftest import closed_with, communicator, recv, recv_type, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def open_echo(token: str, **kwargs):
    comm = communicator("/ws/echo/", token=token, **kwargs)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    ready = await recv(comm)
    assert ready["type"] == "echo.ready"
    return comm


async def error_of(comm) -> dict:
    frame = await recv_type(comm, "error")
    return frame


async def test_greeting_and_server_frames_are_envelopes(token):
    comm = communicator("/ws/echo/", token=token)
    await comm.connect()
    text = await comm.receive_from()
    envelope = decode_server_frame(text)  # strict: type, payload, UTC timestamp
    assert envelope.type == "echo.ready"
    assert envelope.timestamp.endswith("Z") and len(envelope.timestamp) == 24
    await comm.disconnect()


async def test_ping_is_answered_with_same_payload_and_request_id(token):
    comm = await open_echo(token)
    await send(comm, "ping", {"n": 1, "x": [1, 2]}, request_id="r-1")
    pong = await recv(comm)
    assert pong["type"] == "pong"
    assert pong["payload"] == {"n": 1, "x": [1, 2]}
    assert pong["request_id"] == "r-1"
    await comm.disconnect()


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("not json", "INVALID_JSON", "not valid JSON"),
        ('{"type": "ping", "payload": NaN}', "INVALID_JSON", "NaN"),
        ('{"type": "ping", "payload": {"x": Infinity}}', "INVALID_JSON", "Infinity"),
        ("[1]", "INVALID_MESSAGE", "JSON object"),
        ('"text"', "INVALID_MESSAGE", "JSON object"),
        ('{"type": "ping"}', "INVALID_MESSAGE", "payload"),
        ('{"type": "ping", "payload": {}, "extra": 1}', "INVALID_MESSAGE", "extra"),
        ('{"type": "ping", "payload": []}', "INVALID_MESSAGE", "payload"),
        ('{"type": 5, "payload": {}}', "INVALID_MESSAGE", "type"),
        ('{"type": "Ping", "payload": {}}', "INVALID_MESSAGE", "type"),
        (
            '{"type": "ping", "payload": {}, "request_id": "bad id!"}',
            "INVALID_MESSAGE",
            "request_id",
        ),
        (
            '{"type": "ping", "payload": {}, "timestamp": "yesterday"}',
            "INVALID_MESSAGE",
            "timestamp",
        ),
        (
            '{"type": "ping", "payload": {"n": 9007199254740993}}',
            "INVALID_MESSAGE",
            "2^53",
        ),
        ('{"type": "ping", "payload": {"n": 1e400}}', "INVALID_MESSAGE", "2^53"),
        ('{"type": "ping", "payload": {"s": "a\\u0000b"}}', "INVALID_MESSAGE", "NUL"),
        (
            '{"type": "ping", "payload": {"s": "\\ud800"}}',
            "INVALID_MESSAGE",
            "surrogate",
        ),
        (
            '{"type": "ping", "payload": ' + "[" * 40 + "]" * 40 + "}",
            "INVALID_MESSAGE",
            "nested",
        ),
        ('{"type": "nope.nothing", "payload": {}}', "UNKNOWN_TYPE", "nope.nothing"),
        ('{"type": "websocket.disconnect", "payload": {}}', "UNKNOWN_TYPE", ""),
        ('{"type": "realtime.fanout", "payload": {"text": "x"}}', "UNKNOWN_TYPE", ""),
        ('{"type": "realtime.close", "payload": {"code": 4010}}', "UNKNOWN_TYPE", ""),
        (
            '{"type": "echo.answer", "payload": {"answer": "x"}}',
            "INVALID_MESSAGE",
            "request_id",
        ),
        (
            '{"type": "pong", "payload": {"nonce": 5}}',
            "INVALID_MESSAGE",
            "payload.nonce",
        ),
    ],
)
async def test_bad_frames_get_their_error_and_the_socket_lives(
    token, text, code, fragment
):
    comm = await open_echo(token)
    await comm.send_to(text_data=text)
    error = await error_of(comm)
    assert error["payload"]["code"] == code
    assert fragment in error["payload"]["message"]
    # The same socket still answers.
    await send(comm, "ping", {"after": code})
    assert (await recv_type(comm, "pong"))["payload"] == {"after": code}
    await comm.disconnect()


async def test_invalid_frame_echoes_a_valid_request_id(token):
    comm = await open_echo(token)
    await comm.send_to(
        text_data=json.dumps({"type": "ping", "payload": 1, "request_id": "r-9"})
    )
    error = await error_of(comm)
    assert error["request_id"] == "r-9"
    await comm.disconnect()


async def test_oversized_text_frame(token, settings):
    settings.REALTIME_MAX_TEXT_BYTES = 1024
    comm = await open_echo(token)
    await send(comm, "ping", {"blob": "é" * 600})  # 1,200 bytes in UTF-8
    error = await error_of(comm)
    assert error["payload"]["code"] == "MESSAGE_TOO_LARGE"
    await send(comm, "ping", {"blob": "a" * 900})  # under the limit
    assert (await recv_type(comm, "pong"))["payload"]["blob"] == "a" * 900
    await comm.disconnect()


async def test_binary_frame_where_none_is_taken(token):
    comm = await open_echo(token)
    await comm.send_to(bytes_data=b"\x00\x01")
    error = await error_of(comm)
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert "binary" in error["payload"]["message"]
    await comm.disconnect()


async def test_flood_of_violations_closes_4029(token, settings):
    settings.REALTIME_MAX_VIOLATIONS = 5
    comm = await open_echo(token)
    for _ in range(5):
        await comm.send_to(text_data="garbage")
        assert (await error_of(comm))["payload"]["code"] == "INVALID_JSON"
    await comm.send_to(text_data="garbage")  # the 6th in 60 s exceeds 5
    assert (await error_of(comm))["payload"]["code"] == "INVALID_JSON"
    assert await closed_with(comm) == 4029
    await comm.disconnect()


async def test_valid_but_refused_messages_are_not_violations(token, settings):
    settings.REALTIME_MAX_VIOLATIONS = 2
    comm = await open_echo(token)
    for _ in range(4):  # rate-limited pings are not protocol violations
        await send(comm, "echo.answer", {"answer": "x"}, request_id="srv-nope")
        assert (await error_of(comm))["payload"]["code"] == "UNKNOWN_REQUEST"
    await send(comm, "ping", {})
    assert (await recv_type(comm, "pong"))["type"] == "pong"
    await comm.disconnect()


async def test_ping_flood_is_rate_limited(token):
    comm = await open_echo(token)
    for i in range(12):
        await send(comm, "ping", {"i": i})
    frames = [await recv(comm) for _ in range(12)]
    pongs = [f for f in frames if f["type"] == "pong"]
    limited = [f for f in frames if f["type"] == "error"]
    assert len(pongs) == 10
    assert len(limited) == 2
    assert limited[0]["payload"]["code"] == "RATE_LIMITED"
    assert 0 < limited[0]["payload"]["retry_after"] <= 1
    await comm.disconnect()


async def test_cross_site_origins_are_refused(token):
    for origin in (b"https://evil.example", b"null", b"http://localhost.evil.com"):
        comm = communicator("/ws/echo/", token=token, origin=origin)
        connected, _ = await comm.connect()
        assert not connected, origin
        await comm.disconnect()


async def test_no_origin_header_is_a_non_browser_client_and_may_connect(token):
    comm = await open_echo(token, origin=None)
    await comm.disconnect()


async def test_missing_credential_closes_4008():
    comm = communicator("/ws/echo/")
    connected, _ = await comm.connect()
    assert connected  # accepted first, so the client sees the code
    assert await closed_with(comm) == 4008
    await comm.disconnect()


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", "x" * 10_000])
async def test_bad_credential_closes_4001(bad):
    comm = communicator("/ws/echo/", token=bad)
    await comm.connect()
    assert await closed_with(comm) == 4001
    await comm.disconnect()


async def test_unknown_path_closes_4004(token):
    comm = communicator("/ws/nothing/here/", token=token)
    connected, _ = await comm.connect()
    assert connected
    assert await closed_with(comm) == 4004
    await comm.disconnect()


async def test_server_to_client_request_round_trip(token):
    comm = await open_echo(token)
    await send(comm, "echo.ask", {"question": "name?"}, request_id="q-1")
    question = await recv_type(comm, "echo.question")
    assert question["payload"] == {"question": "name?"}
    rid = question["request_id"]
    assert rid.startswith("srv-") and len(rid) > 20
    # While the handler waits, the socket still serves pings.
    await send(comm, "ping", {"during": True})
    assert (await recv_type(comm, "pong"))["payload"] == {"during": True}
    await send(comm, "echo.answer", {"answer": "Ada"}, request_id=rid)
    answered = await recv_type(comm, "echo.answered")
    assert answered["payload"] == {"answer": "Ada"}
    assert answered["request_id"] == "q-1"
    # The id was single use.
    await send(comm, "echo.answer", {"answer": "again"}, request_id=rid)
    assert (await error_of(comm))["payload"]["code"] == "UNKNOWN_REQUEST"
    await comm.disconnect()


async def test_server_to_client_request_timeout_then_late_reply(token):
    comm = await open_echo(token)
    await send(comm, "echo.ask", {"question": "?", "timeout": 0.2}, request_id="q-2")
    question = await recv_type(comm, "echo.question")
    rid = question["request_id"]
    timeout = await error_of(comm)
    assert timeout["payload"]["code"] == "TIMEOUT"
    assert timeout["request_id"] == rid
    assert (await recv_type(comm, "echo.answered"))["payload"] == {"answer": None}
    await send(comm, "echo.answer", {"answer": "late"}, request_id=rid)
    assert (await error_of(comm))["payload"]["code"] == "UNKNOWN_REQUEST"
    await comm.disconnect()


async def test_reply_with_another_connections_request_id(make_user):
    from tests.conftest import access_token

    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    a = await open_echo(access_token(alice))
    b = await open_echo(access_token(bob))
    await send(a, "echo.ask", {"question": "?", "timeout": 5})
    rid = (await recv_type(a, "echo.question"))["request_id"]
    await send(b, "echo.answer", {"answer": "stolen"}, request_id=rid)
    assert (await error_of(b))["payload"]["code"] == "UNKNOWN_REQUEST"
    await send(a, "echo.answer", {"answer": "mine"}, request_id=rid)
    assert (await recv_type(a, "echo.answered"))["payload"] == {"answer": "mine"}
    await a.disconnect()
    await b.disconnect()


async def test_heartbeat_closes_a_silent_client_4003(token, settings):
    settings.HEARTBEAT_INTERVAL, settings.PONG_TIMEOUT = 0.1, 0.1
    settings.MAX_MISSED_PONGS = 3
    comm = await open_echo(token)
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
    comm = await open_echo(token)
    for _ in range(8):  # well past 3 missed pongs' worth of time
        ping = await recv_type(comm, "ping")
        await send(comm, "pong", {"nonce": ping["payload"]["nonce"]})
    await send(comm, "echo", {"still": "here"})
    assert (await recv_type(comm, "echo"))["payload"] == {"still": "here"}
    await comm.disconnect()


async def test_wrong_nonce_does_not_count_as_pong(token, settings):
    settings.HEARTBEAT_INTERVAL, settings.PONG_TIMEOUT = 0.1, 0.1
    settings.MAX_MISSED_PONGS = 2
    comm = await open_echo(token)
    for _ in range(2):
        await recv_type(comm, "ping")
        await comm.send_to(text_data='{"type":"pong","payload":{"nonce":"forged"}}')
    # A pong with a wrong nonce is still a valid frame, i.e. a sign of life (§4):
    # the client is kept; only silence kills it.
    await send(comm, "ping", {})
    assert (await recv_type(comm, "pong"))["type"] == "pong"
    await comm.disconnect()


async def test_expired_token_closes_4001_unless_refreshed(user, settings):
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    short = AccessToken.for_user(user)
    short.set_exp(lifetime=timedelta(seconds=1))
    comm = await open_echo(str(short))
    assert await closed_with(comm, timeout=4) == 4001
    await comm.disconnect()

    short = AccessToken.for_user(user)
    short.set_exp(lifetime=timedelta(seconds=1))
    comm = await open_echo(str(short))
    fresh = str(AccessToken.for_user(user))
    await send(comm, "auth.refresh", {"token": fresh}, request_id="a-1")
    refreshed = await recv_type(comm, "auth.refreshed")
    assert refreshed["request_id"] == "a-1" and refreshed["payload"]["expires_at"]
    await asyncio.sleep(1.5)  # past the first token's expiry
    await send(comm, "echo", {"ok": True})
    assert (await recv_type(comm, "echo"))["payload"] == {"ok": True}
    await comm.disconnect()


async def test_refresh_with_someone_elses_or_a_bad_token(user, make_user):
    from tests.conftest import access_token

    other = await sync_to_async(make_user)("mallory")
    comm = await open_echo(access_token(user))
    await send(comm, "auth.refresh", {"token": access_token(other)})
    assert (await error_of(comm))["payload"]["code"] == "FORBIDDEN"
    await send(comm, "auth.refresh", {"token": "garbage"})
    assert (await error_of(comm))["payload"]["code"] == "INVALID_MESSAGE"
    await comm.disconnect()


async def test_one_client_misbehaving_does_not_touch_another(make_user, settings):
    from tests.conftest import access_token

    settings.REALTIME_MAX_VIOLATIONS = 3
    good = await open_echo(access_token(await sync_to_async(make_user)("good")))
    bad = await open_echo(access_token(await sync_to_async(make_user)("bad")))
    for _ in range(4):
        await bad.send_to(text_data="{")
    assert await closed_with(bad) == 4029
    await bad.disconnect()
    await send(good, "echo", {"n": 1})
    assert (await recv_type(good, "echo"))["payload"] == {"n": 1}
    await good.disconnect()


async def test_handler_bug_answers_internal_with_trace_id(token, monkeypatch):
    from realtime.echo import EchoConsumer

    async def broken(self, payload, envelope):
        raise RuntimeError("boom")

    monkeypatch.setattr(EchoConsumer, "on_echo", broken)
    comm = await open_echo(token)
    await send(comm, "echo", {}, request_id="b-1")
    error = await error_of(comm)
    assert error["payload"]["code"] == "INTERNAL"
    assert "trace" in error["payload"]["message"]
    assert error["request_id"] == "b-1"
    await send(comm, "ping", {})
    assert (await recv_type(comm, "pong"))["type"] == "pong"
    await comm.disconnect()


async def test_an_unreachable_database_answers_retryable_unavailable(
    token, monkeypatch
):
    from django.db import OperationalError

    from realtime.echo import EchoConsumer

    async def cut_off(self, payload, envelope):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(EchoConsumer, "on_echo", cut_off)
    comm = await open_echo(token)
    await send(comm, "echo", {}, request_id="db-1")
    error = await error_of(comm)
    assert error["request_id"] == "db-1"
    assert error["payload"]["code"] == "INTERNAL"
    assert error["payload"]["message"] == "temporarily unavailable, try again"
    assert error["payload"]["retry_after"] == 1.0
    assert "trace" not in error["payload"]["message"]
    await send(comm, "ping", {})  # the socket stays up
    assert (await recv_type(comm, "pong"))["type"] == "pong"
    await comm.disconnect()


async def test_too_many_connections_closes_4013(token, settings):
    from realtime.connection import connections

    # Relative to what is open now, so that no other test's sockets matter.
    settings.REALTIME_MAX_CONNECTIONS = connections.count + 1
    first = await open_echo(token)
    second = communicator("/ws/echo/", token=token)
    await second.connect()
    assert await closed_with(second) == 4013
    await second.disconnect()
    await first.disconnect()


async def test_guest_tokens_are_refused_on_users_only_endpoints():
    from realtime.tokens import scoped_token_issue

    guest = scoped_token_issue(
        {"kind": "participant", "pid": 1, "session": "X"}, ttl=60
    )
    comm = communicator("/ws/echo/", token=guest)
    await comm.connect()
    assert await closed_with(comm) == 4005
    await comm.disconnect()


async def test_waiting_handlers_are_capped_per_connection(token, settings):
    settings.REALTIME_MAX_TASKS = 2  # heartbeat and expiry are timers: no task held
    comm = await open_echo(token)
    for i in range(3):
        await send(
            comm, "echo.ask", {"question": f"q{i}", "timeout": 5}, request_id=f"a{i}"
        )
    # Frames are read back to back, so the refusal may overtake the questions.
    frames = [await recv(comm) for _ in range(3)]
    assert sorted(f["type"] for f in frames) == ["echo.question"] * 2 + ["error"]
    (refused,) = [f for f in frames if f["type"] == "error"]
    assert refused["payload"]["code"] == "RATE_LIMITED"
    assert (
        refused["request_id"] == "a2" and "in progress" in refused["payload"]["message"]
    )
    await comm.disconnect()


async def test_the_handshake_headers_are_read_at_connect_and_not_kept(user):
    from tests.conftest import access_token

    # A bearer credential and an origin: both read at connect (a wrong origin is
    # refused, a bearer token authenticates), neither kept afterwards.
    comm = communicator("/ws/echo/", bearer=access_token(user))
    headers = comm.scope["headers"]
    assert headers  # the server's scope; the entry's copy shares the list
    assert (await comm.connect(timeout=5))[0]
    assert (await recv(comm))["type"] == "echo.ready"
    assert headers == []  # emptied once the socket was set up
    await send(comm, "echo", {"ok": True})
    assert (await recv_type(comm, "echo"))["payload"] == {"ok": True}
    await comm.disconnect()
    # The next socket's headers are its own, and still checked at its connect.
    stranger = communicator(
        "/ws/echo/", bearer=access_token(user), origin=b"http://evil.example"
    )
    assert not (await stranger.connect(timeout=5))[0]


async def test_a_closed_socket_leaves_nothing_on_the_heartbeat_wheel(user):
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    from realtime.heartbeat import wheel

    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(minutes=5))
    comm = await open_echo(str(token))
    assert len(wheel()) == 2  # its heartbeat and its credential's expiry
    await comm.disconnect()
    assert len(wheel()) == 0
