"""The AsyncAPI document: valid AsyncAPI 3.0, complete, and true to the real frames."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.urls import path, re_path
from jsonschema import Draft7Validator, Draft202012Validator
from pydantic import BaseModel
from rest_framework.test import APIClient

from camera import events
from camera.models import Stream
from config.apidocs import socket_document
from config.routing import websocket_urlpatterns
from realtime.asyncapi import (
    COMMON_SENDS,
    asyncapi_document,
    asyncapi_outline,
    socket_routes,
)
from realtime.codes import CLOSE_CODES
from realtime.consumers import NotFoundConsumer
from realtime.echo import EchoConsumer
from realtime.protocol import CloseCode, ErrorCode, InvalidMessage, encode_error
from realtime.protocol import encode_frame as encode
from sessions_app import frames, notices, services
from sessions_app.messenger import frames as messenger_frames
from sessions_app.messenger import presence as messenger_presence
from sessions_app.messenger import services as messenger_services
from sessions_app.messenger.consumer import MessengerConsumer
from sessions_app.messenger.messaging import (
    message_delete,
    message_edit,
    message_send,
    reaction_toggle,
)
from tests.conftest import access_token, communicator, recv_type, send
from tests.copilot.helpers import ITEMS, open_copilot, read_answer, reply
from tests.messenger.conftest import alice, bob, carol, pushed  # noqa: F401

SCHEMA = Path(__file__).resolve().parents[1] / "asyncapi" / "asyncapi-3.0.0.json"


@cache
def asyncapi_validator() -> Draft7Validator:
    """The official AsyncAPI 3.0.0 schema (draft-07, every definition bundled)."""
    return Draft7Validator(json.loads(SCHEMA.read_text()))


def missing_types(document: dict, routes) -> list[str]:
    """``channel: direction type`` for every type a consumer takes or declares that
    the document lacks (in the channel, or in its operation)."""
    missing = []
    channels = {c["address"]: (name, c) for name, c in document["channels"].items()}
    for route in routes:
        name, channel = channels.get(route.address, (None, {"messages": {}}))
        listed = {
            ref["$ref"].rsplit("/", 1)[1]
            for op in document["operations"].values()
            if op["channel"]["$ref"] == f"#/channels/{name}"
            for ref in op["messages"]
        }
        consumer = route.consumer
        wanted = [f"receive.{t}" for t in consumer.inbound.routes]
        wanted += [f"send.{t}" for t in {**COMMON_SENDS, **consumer.sends}]
        for key in wanted:
            if key not in channel["messages"] or key not in listed:
                missing.append(f"{route.address}: {key}")
    return missing


def frame_problems(document: dict, channel: str, text: str) -> list[str]:
    """What is wrong with a server frame against the document's message of its type
    (envelope and payload, ``$ref``s followed) and the endpoint's own model."""
    frame = json.loads(text)
    key = f"send.{frame['type']}"
    messages = document["channels"][channel]["messages"]
    if key not in messages:
        return [f"{frame['type']} is not declared on {channel}"]
    pointer = f"#/channels/{channel}/messages/{key}/payload"
    if "$ref" in messages[key]:
        pointer = messages[key]["$ref"] + "/payload"
    root = {"$ref": pointer, **document}
    validator = Draft202012Validator(root)
    return [error.message for error in validator.iter_errors(frame)]


def assert_declared(channel: str, *texts: str) -> None:
    """Each frame fits its message in the document and its declared model."""
    document = socket_document()
    consumers = {
        r.consumer.endpoint: r.consumer for r in socket_routes(websocket_urlpatterns)
    }
    declared = {**COMMON_SENDS, **consumers[channel].sends}
    for text in texts:
        assert frame_problems(document, channel, text) == [], text
        frame = json.loads(text)
        model = declared.get(frame["type"])
        if isinstance(model, type) and issubclass(model, BaseModel):
            model.model_validate(frame["payload"])


# --------------------------------------------------------------------- the document
@pytest.mark.django_db
def test_served_document_is_valid_asyncapi_3(settings):
    settings.ALLOWED_HOSTS = ["rt.example"]
    reply = APIClient().get("/api/asyncapi.json", HTTP_HOST="rt.example")
    assert reply.status_code == 200  # public, like /api/schema/
    document = reply.json()
    errors = [e.message for e in asyncapi_validator().iter_errors(document)]
    assert errors == []
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["this"] == {
        "host": "rt.example",
        "protocol": "ws",
        "description": "this server",
    }


def test_the_validator_refuses_a_broken_document():
    document = json.loads(json.dumps(socket_document()))
    document["operations"]["echo.send"]["action"] = "publish"  # AsyncAPI 2's word
    assert list(asyncapi_validator().iter_errors(document))


def test_every_socket_path_is_a_channel():
    document = socket_document()
    addresses = sorted(c["address"] for c in document["channels"].values())
    assert addresses == [
        "/ws/copilot/",
        "/ws/echo/",
        "/ws/messenger/",
        "/ws/sessions/{code}/",
        "/ws/streams/{stream_id}/",
        "/ws/streams/{stream_id}/publish/",
    ]
    sessions = document["channels"]["sessions"]
    assert sessions["parameters"] == {"code": {"description": "the path segment code"}}
    assert sessions["description"].startswith("``/ws/sessions/<code>/``")


def test_every_handled_and_declared_type_is_in_the_document():
    routes = socket_routes(websocket_urlpatterns)
    assert missing_types(socket_document(), routes) == []
    # Including the common types and callback replies of the route tables.
    echo = socket_document()["channels"]["echo"]["messages"]
    assert {"receive.ping", "receive.pong", "receive.auth.refresh"} <= set(echo)
    assert echo["receive.echo.answer"]["payload"]["required"] == [
        "type",
        "payload",
        "request_id",
    ]
    assert "send.error" in echo and "send.auth.refreshed" in echo


def test_a_type_missing_from_the_document_is_found():
    routes = socket_routes(websocket_urlpatterns)
    document = json.loads(json.dumps(socket_document()))
    del document["channels"]["sessions"]["messages"]["receive.chat.send"]
    del document["channels"]["copilot"]["messages"]["send.response"]
    assert sorted(missing_types(document, routes)) == [
        "/ws/copilot/: send.response",
        "/ws/sessions/{code}/: receive.chat.send",
    ]


def test_a_new_handler_appears_without_touching_the_generator():
    class Notes(EchoConsumer):
        endpoint = "notes"
        messages = {**EchoConsumer.messages, "note.add": None}
        sends = {"note.added": {"type": "object", "required": ["id"]}}

        async def on_note_add(self, payload, envelope):
            pass

    routes = socket_routes(
        [path("ws/notes/<int:board>/", Notes.as_asgi()), re_path(r"", Notes.as_asgi())]
    )
    assert [r.address for r in routes] == ["/ws/notes/{board}/"]
    document = asyncapi_document(routes=routes, title="t", version="1")
    assert list(asyncapi_validator().iter_errors(document)) == []
    messages = document["channels"]["notes"]["messages"]
    assert messages["receive.note.add"]["payload"]["properties"]["payload"] == {
        "type": "object",
        "description": "any JSON object",
    }
    added = messages["send.note.added"]["payload"]
    assert added["properties"]["payload"] == {"type": "object", "required": ["id"]}
    assert added["required"] == ["type", "payload", "timestamp"]
    assert missing_types(document, routes) == []


def test_a_catch_all_is_not_a_channel():
    routes = socket_routes([re_path(r"", NotFoundConsumer.as_asgi())])
    assert routes == []


def test_two_endpoints_of_one_name_get_two_channels():
    routes = socket_routes(
        [path("a/", EchoConsumer.as_asgi()), path("b/", EchoConsumer.as_asgi())]
    )
    document = asyncapi_document(routes=routes, title="t", version="1")
    assert list(document["channels"]) == ["echo", "echo_2"]
    assert document["operations"]["echo_2.send"]["channel"] == {
        "$ref": "#/channels/echo_2"
    }


def test_close_and_error_codes_are_components():
    components = socket_document()["components"]
    for code in CloseCode:
        assert components["x-close-codes"][str(int(code))]["name"] == code.name
    assert set(components["schemas"]["CloseCode"]["enum"]) == set(CLOSE_CODES)
    assert components["x-error-codes"] == [code.value for code in ErrorCode]
    error = encode_error(InvalidMessage("payload.content: required"), request_id="r1")
    assert_declared("echo", error)
    assert frame_problems(socket_document(), "echo", encode("nope", {})) == [
        "nope is not declared on echo"
    ]


def test_a_frame_off_its_schema_is_caught():
    document = socket_document()
    assert frame_problems(document, "echo", encode("echo.answered", {})) != []
    assert frame_problems(
        document, "echo", encode("echo.answered", {"answer": None, "x": 1})
    )
    no_timestamp = json.dumps({"type": "ping", "payload": {"nonce": "n"}})
    assert frame_problems(document, "echo", no_timestamp)


@pytest.mark.django_db
def test_the_page_lists_channels_messages_and_codes():
    page = APIClient().get("/api/asyncapi/")
    assert page.status_code == 200
    html = page.content.decode()
    for address in ("/ws/sessions/{code}/", "/ws/messenger/", "/ws/copilot/"):
        assert address in html
    assert "chat.send" in html and "&quot;online_count&quot;" in html  # inlined
    assert "&quot;last_seq&quot;" in html and "4029" in html
    assert "TOO_MANY_VIOLATIONS" in html and "INVALID_JSON" in html
    assert "cdn" not in html.lower() and "<script" not in html


def test_outline_follows_references_once():
    outline = {c["name"]: c for c in asyncapi_outline(socket_document())}
    (receive, received), (send_, sent) = outline["sessions"]["operations"]
    assert receive.startswith("receive") and send_.startswith("send")
    chat = next(row for row in received if row["type"] == "chat.send")
    assert json.loads(chat["schema"])["required"] == ["content"]
    error = next(row for row in sent if row["type"] == "error")
    assert "ErrorCode" in error["schema"]


# --------------------------------------------------------------- frames as sent
@pytest.mark.django_db(transaction=True)
async def test_echo_frames_match_the_document(user, token):
    comm = communicator("/ws/echo/", token=token)
    assert (await comm.connect(timeout=5))[0]
    texts = [await comm.receive_from(timeout=3)]  # echo.ready
    await send(comm, "echo", {"any": [1]})
    await send(comm, "ping", {"k": 1})
    await send(comm, "echo.broadcast", {"hello": True})
    for _ in range(3):
        texts.append(await comm.receive_from(timeout=3))
    await send(comm, "echo.ask", {"question": "why?"}, request_id="ask-1")
    question = await comm.receive_from(timeout=3)
    texts.append(question)
    await send(
        comm,
        "echo.answer",
        {"answer": "because"},
        request_id=json.loads(question)["request_id"],
    )
    texts.append(await comm.receive_from(timeout=3))
    await send(comm, "echo.ask", {"question": "again?", "timeout": 0.05})
    texts += [await comm.receive_from(timeout=3) for _ in range(3)]  # + error TIMEOUT
    await comm.disconnect()
    types = [json.loads(text)["type"] for text in texts]
    assert types[:6] == [
        "echo.ready",
        "echo",
        "pong",
        "echo.broadcasted",
        "echo.question",
        "echo.answered",
    ]
    assert set(types[6:]) == {"echo.question", "error", "echo.answered"}
    assert_declared("echo", *texts)
    assert_declared("echo", encode("ping", {"nonce": "abc"}))
    assert_declared("echo", encode("auth.refreshed", {"expires_at": None}))


@pytest.mark.django_db
def test_session_frames_match_the_document(make_user):
    host = make_user("hosty")
    session = services.session_create(host=host, title="Town hall", moderated=True)
    me = services.participant_for_user(session=session, user=host)
    guest, _ = services.participant_guest_join(session=session, nickname="ann")
    chat, _ = services.message_post(
        session_id=session.pk, participant=me, content="hi", client_id="c-1"
    )
    question, _ = services.message_post(
        session_id=session.pk, participant=me, content="why?", kind="question"
    )
    pending, _ = services.message_post(
        session_id=session.pk, participant=guest, content="me?", kind="question"
    )
    hidden, _ = services.message_hide(session_id=session.pk, by=me, message_id=chat.pk)
    upvoted, _ = services.question_upvote(
        session_id=session.pk, participant=guest, message_id=question.pk
    )
    person = frames.participant_payload(guest)
    joined = notices.Notice(notices.JOINED, person, None, 0, 1)
    left = notices.Notice(notices.LEFT, frames.participant_payload(me), None, 0, 1)
    texts = [
        encode(*frames.message_frame(chat)),
        encode(*frames.message_frame(question)),
        encode(*frames.message_frame(pending)),
        encode(*frames.message_frame(hidden)),  # a tombstone
        encode("question.updated", frames.question_update_payload(upvoted)),
        encode("message.hidden", frames.hidden_payload(hidden)),
        encode("message.hidden", frames.hidden_payload(pending)),
        encode("session.updated", frames.session_payload(session)),
        encode("participant.updated", person),
        notices.changes_frame([joined], online_count=3)[0],
        notices.changes_frame([left])[0],
        notices.changes_frame([joined, left], online_count=2)[0],
    ]
    types = [json.loads(text)["type"] for text in texts]
    assert types[:3] == ["chat.message", "question.asked", "question.pending"]
    assert types[-3:] == [
        "participant.joined",
        "participant.left",
        "participants.changed",
    ]
    assert_declared("sessions", *texts)


@pytest.mark.django_db(transaction=True)
async def test_session_socket_frames_match_the_document(make_user):
    host = await sync_to_async(make_user)("hosty")
    session = await sync_to_async(services.session_create)(host=host, title="T")
    token = await sync_to_async(access_token)(host)
    comm = communicator(f"/ws/sessions/{session.code}/?since=0", token=token)
    assert (await comm.connect(timeout=5))[0]
    texts = [await comm.receive_from(timeout=3) for _ in range(2)]
    await send(comm, "chat.send", {"content": "hello"})
    await send(comm, "participant.update", {"nickname": "Boss"})
    await send(comm, "session.close", {})
    texts += [await comm.receive_from(timeout=3) for _ in range(3)]
    await comm.disconnect()
    types = [json.loads(text)["type"] for text in texts]
    assert types == [
        "session.welcome",
        "session.synced",
        "chat.message",
        "participant.updated",
        "session.closed",
    ]
    assert_declared("sessions", *texts)


@pytest.mark.django_db
def test_messenger_frames_match_the_document(alice, bob, carol, pushed):  # noqa: F811
    conversation, _ = messenger_services.conversation_create(
        user=alice, member_ids=[bob.pk], kind="group", title="Team"
    )
    cid = conversation.pk
    message, _ = message_send(
        conversation_id=cid, user=alice, content="hi", client_id="c-1"
    )
    answer, _ = message_send(
        conversation_id=cid, user=bob, content="yo", reply_to=message.pk
    )
    message_edit(message_id=message.pk, user=alice, content="hello")
    reaction_toggle(message_id=message.pk, user=bob, emoji="👍")
    messenger_services.read_mark(user=bob, message_id=answer.pk)
    message_delete(message_id=answer.pk, user=bob)
    answer.refresh_from_db()
    tombstone = encode("message.new", messenger_frames.message_payload(answer))
    pushed.flush()  # as the commit would, while the rows are there
    messenger_services.conversation_update(
        conversation_id=cid, user=alice, title="Crew"
    )
    messenger_services.member_add(conversation_id=cid, user=alice, user_id=carol.pk)
    messenger_services.member_remove(conversation_id=cid, user=alice, user_id=carol.pk)
    messenger_services.conversation_delete(conversation_id=cid, user=alice)
    pushed.flush()
    texts = [  # the hub's typed events are not frames: the consumer handles them
        encode(frame["type"], frame["payload"])
        for _, frame, _ in pushed
        if frame["type"] not in MessengerConsumer.events
    ]
    texts.append(tombstone)
    texts.append(messenger_presence.offline_frame(alice.pk, 1_700_000_000.0))
    texts.append(encode("user.online", {"user_id": alice.pk}))
    types = {json.loads(text)["type"] for text in texts}
    assert types >= {
        "conversation.created",
        "message.new",
        "message.edited",
        "message.reactions",
        "message.read",
        "message.deleted",
        "conversation.updated",
        "member.added",
        "member.removed",
        "conversation.deleted",
        "user.offline",
    }
    assert_declared("messenger", *texts)


@pytest.mark.django_db(transaction=True)
async def test_messenger_socket_frames_match_the_document(make_user):
    alice_ = await sync_to_async(make_user)("alice")
    bob_ = await sync_to_async(make_user)("bob")
    conversation, _ = await sync_to_async(messenger_services.conversation_create)(
        user=alice_, member_ids=[bob_.pk], kind="group", title="Team"
    )
    cid = str(conversation.pk)
    token = await sync_to_async(access_token)(alice_)
    comm = communicator("/ws/messenger/", token=token)
    assert (await comm.connect(timeout=5))[0]
    texts = [await comm.receive_from(timeout=3)]
    await send(comm, "message.send", {"conversation_id": cid, "content": "before"})
    texts += [await comm.receive_from(timeout=3) for _ in range(2)]  # + activity
    await send(comm, "conversation.subscribe", {"conversation_id": cid, "since": 0})
    texts.append(await recv_text(comm, "conversation.subscribed"))
    texts.append(await recv_text(comm, "conversation.synced"))
    await send(comm, "conversation.unsubscribe", {"conversation_id": cid})
    texts.append(await recv_text(comm, "conversation.unsubscribed"))
    await comm.disconnect()
    assert_declared("messenger", *texts)
    types = {json.loads(text)["type"] for text in texts}
    assert {"system.connected", "conversation.activity"} <= types


async def recv_text(comm, type_: str) -> str:
    """The next frame of ``type_`` as its text (others on the way are checked)."""
    while True:
        text = await comm.receive_from(timeout=3)
        if json.loads(text)["type"] == type_:
            return text
        assert_declared("messenger", text)


@pytest.mark.django_db
def test_camera_frames_match_the_document():
    stream = Stream.objects.create(slug="cam", title="Bench camera")
    header = events.frame_event(seq=1, kind="raw", captured_at=1.5, jpeg=b"\xff\xd8")
    poses = {
        "seq": 1,
        "captured_at": 1.5,
        "markers": [
            {
                "id": 3,
                "corners": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
                "rvec": [0.1, 0.2, 0.3],
                "tvec": [0.0, 0.0, 1.0],
                "distance_m": 1.0,
            }
        ],
        "transforms": [],
    }
    assert_declared(
        "streams",
        encode("stream.info", stream.info_payload()),
        header["header"],
        events.poses_event(poses)["text"],
        encode("stream.subscribed", {"kinds": ["raw"], "poses": True, "max_fps": None}),
    )


@pytest.mark.django_db(transaction=True)
async def test_camera_socket_greetings_match_the_document(user, token):
    stream = await sync_to_async(Stream.objects.create)(slug="cam", kinds=["raw"])
    viewer = communicator("/ws/streams/cam/", token=token)
    assert (await viewer.connect(timeout=5))[0]
    info = await viewer.receive_from(timeout=3)
    await send(viewer, "stream.subscribe", {"kinds": ["raw"], "max_fps": 5})
    subscribed = await viewer.receive_from(timeout=3)
    await viewer.disconnect()
    assert_declared("streams", info, subscribed)
    worker = communicator("/ws/streams/cam/publish/", bearer=stream.publish_token)
    assert (await worker.connect(timeout=5))[0]
    ready = await worker.receive_from(timeout=3)
    await worker.disconnect()
    assert json.loads(ready)["type"] == "publish.ready"
    assert_declared("streams_publish", ready)


# The second query goes on answering while the test resumes the first.
ANSWERING = ("ping", "request_api", "response.delta", "response", "error")


@pytest.mark.django_db(transaction=True)
async def test_copilot_frames_match_the_document(token):
    comm, greeting = await open_copilot(token)
    texts = [encode("connected", greeting["payload"])]
    await send(comm, "query", {"text": "monthly_costs please"}, request_id="q1")
    texts.append(await comm.receive_from(timeout=3))  # query.accepted
    asked = await recv_type(comm, "request_available_data")
    texts.append(encode("request_available_data", asked["payload"], request_id="r"))
    await reply(comm, asked, "available_data", {"items": ITEMS})
    api = await recv_type(comm, "request_api")
    texts.append(encode("request_api", api["payload"], request_id="r"))
    await reply(comm, api, "api_result", {"status": 200, "body": {"records": []}})
    query_id = json.loads(texts[1])["payload"]["query_id"]
    deltas, response = await read_answer(comm, query_id)
    texts += [encode("response.delta", delta) for delta in deltas]
    texts.append(encode("response", response))
    await send(comm, "query", {"text": "which one?"})
    await recv_type(comm, "query.accepted")
    asked = await recv_type(comm, "request_available_data")
    await reply(comm, asked, "available_data", {"items": ITEMS})
    clarify = await recv_type(comm, "clarification_request")
    texts.append(encode("clarification_request", clarify["payload"], request_id="r"))
    await reply(comm, clarify, "human_response", {"answer": "instances"})
    await send(comm, "query.resume", {"query_id": query_id})
    resumed = await recv_type(comm, "query.resumed", skip=ANSWERING)
    texts.append(encode("query.resumed", resumed["payload"]))
    await send(comm, "audio.start", {"sample_rate": 16000})
    started = await recv_type(comm, "audio.started", skip=ANSWERING)
    texts.append(encode("audio.started", started["payload"]))
    await comm.send_to(bytes_data=b"\x00\x00" * 1600)
    await send(comm, "audio.stop", {})
    skip = (*ANSWERING, "audio.progress", "audio.vad")
    stopped = await recv_type(comm, "audio.stopped", skip=skip)
    texts.append(encode("audio.stopped", stopped["payload"]))
    await comm.disconnect()
    texts.append(encode("audio.vad", {"speaking": True, "at_ms": 120}))
    texts.append(
        encode("audio.progress", {"bytes": 2, "frames": 1, "ms": 0, "dropped": 0})
    )
    texts.append(
        encode("response", {"query_id": query_id, "text": "", "cancelled": True})
    )
    assert_declared("copilot", *texts)
