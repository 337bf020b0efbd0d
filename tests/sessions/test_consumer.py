"""/ws/sessions/<code>/ through config.asgi.application on the in-memory layer."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from realtime.tokens import scoped_token_issue
from sessions_app.models import Message, Participant, QuestionVote
from sessions_app.services import session_close
from tests.conftest import access_token, closed_with, recv
from tests.sessions.conftest import (
    connect,
    create_session,
    disconnect_all,
    frames_until,
    guest,
    join,
    next_of,
    nothing_of,
    of_type,
    send,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def test_welcome_names_the_session_you_and_who_is_online(host):
    session = await create_session(host, title="Q&A")
    pid, token = await guest(session, "ann")
    comm, welcome = await join(session.code, token)
    assert welcome["session"] == {
        "code": session.code,
        "title": "Q&A",
        "status": "open",
        "moderated": False,
    }
    assert welcome["you"] == {"participant_id": pid, "nickname": "ann", "role": "guest"}
    assert welcome["online"] == [welcome["you"]]
    assert welcome["online_count"] == 1
    assert welcome["last_seq"] == 0
    await comm.disconnect()


async def test_a_big_room_welcome_lists_you_the_host_and_the_latest(host, settings):
    """Past SESSION_WELCOME_ONLINE_MAX the list is cut (the count is not): you, the
    hosts, then the most recently joined, in joining order."""
    settings.SESSION_WELCOME_ONLINE_MAX = 3
    session = await create_session(host)
    h, welcome = await join(session.code, bearer=access_token(host))
    host_entry = welcome["you"]
    comms, yous = [h], []
    for name in ("ann", "bob", "cy", "dee"):
        comm, welcome = await join(session.code, (await guest(session, name))[1])
        comms.append(comm)
        yous.append(welcome["you"])
    assert welcome["online_count"] == 5
    assert welcome["online"] == [host_entry, yous[2], yous[3]]
    settings.SESSION_WELCOME_ONLINE_MAX = 10
    comm, welcome = await join(session.code, (await guest(session, "eve"))[1])
    assert welcome["online"] == [host_entry, *yous, welcome["you"]]
    assert welcome["online_count"] == 6
    await disconnect_all(comm, *comms)


async def test_three_guests_chatting_concurrently_see_one_gapless_order(host):
    session = await create_session(host)
    comms = []
    for name in ("ann", "bob", "cy"):
        _, token = await guest(session, name)
        comms.append((await join(session.code, token))[0])
    per_client = 8
    total = per_client * len(comms)

    async def chat(comm, name):
        for i in range(per_client):
            await send(comm, "chat.send", {"content": f"{name}-{i}"})

    await asyncio.gather(*(chat(c, n) for c, n in zip(comms, "abc", strict=True)))
    seen = [await of_type(comm, "chat.message", total, timeout=10) for comm in comms]
    for messages in seen:
        assert [m["seq"] for m in messages] == list(range(1, total + 1))
    assert seen[0] == seen[1] == seen[2]  # same messages, same order, same content
    contents = {m["content"] for m in seen[0]}
    assert contents == {f"{n}-{i}" for n in "abc" for i in range(per_client)}
    seqs = await sync_to_async(
        lambda: list(Message.objects.order_by("seq").values_list("seq", flat=True))
    )()
    assert seqs == list(range(1, total + 1))
    await disconnect_all(*comms)


async def test_chat_message_shape_and_sender_included(host):
    session = await create_session(host)
    pid, token = await guest(session, "ann")
    comm, _ = await join(session.code, token)
    await send(comm, "chat.send", {"content": "hello", "client_id": "c-1"})
    (message,) = await of_type(comm, "chat.message", 1)
    assert set(message) == {
        "seq",
        "message_id",
        "participant_id",
        "nickname",
        "content",
        "created_at",
        "client_id",
    }
    assert message["seq"] == 1
    assert message["participant_id"] == pid
    assert message["nickname"] == "ann"
    assert message["client_id"] == "c-1"
    assert message["created_at"].endswith("Z")
    await comm.disconnect()


async def test_two_tabs_of_one_participant_one_joined_one_left(host):
    session = await create_session(host)
    _, watcher_token = await guest(session, "watcher")
    pid, token = await guest(session, "twotabs")
    watcher, _ = await join(session.code, watcher_token)
    tab1, _ = await join(session.code, token)
    (joined,) = await of_type(watcher, "participant.joined", 1)
    assert joined == {
        "participant_id": pid,
        "nickname": "twotabs",
        "role": "guest",
        "online_count": 2,  # the watcher and this one
    }
    tab2, welcome = await join(session.code, token)
    assert [p["participant_id"] for p in welcome["online"]].count(pid) == 1
    await tab1.disconnect()
    # Still here in tab 2: a chat message is the marker that nothing came before it.
    await send(tab2, "chat.send", {"content": "still here"})
    frames = await frames_until(
        watcher, lambda f: f and f[-1]["type"] == "chat.message"
    )
    assert [f["type"] for f in frames] == ["chat.message"]
    await tab2.disconnect()
    (left,) = await of_type(watcher, "participant.left", 1)
    assert left["participant_id"] == pid
    await nothing_of(watcher, "participant.left")
    await watcher.disconnect()


async def test_typing_goes_to_the_others_not_back(host):
    session = await create_session(host)
    pid, token_a = await guest(session, "ann")
    _, token_b = await guest(session, "bob")
    a, _ = await join(session.code, token_a)
    b, _ = await join(session.code, token_b)
    await send(a, "typing", {"is_typing": True})
    (typing,) = await of_type(b, "typing", 1)
    assert typing == {"participant_id": pid, "nickname": "ann", "is_typing": True}
    await nothing_of(a, "typing")
    await disconnect_all(a, b)


async def test_typing_is_throttled(host):
    session = await create_session(host)
    _, token = await guest(session)
    comm, _ = await join(session.code, token)
    for _ in range(6):
        await send(comm, "typing", {"is_typing": True})
    error = await next_of(comm, "error")
    assert error["payload"]["code"] == "RATE_LIMITED"
    assert error["payload"]["retry_after"] > 0
    await comm.disconnect()


async def test_upvote_twice_counts_once(host):
    session = await create_session(host)
    _, token_a = await guest(session, "asker")
    _, token_b = await guest(session, "voter")
    a, _ = await join(session.code, token_a)
    b, _ = await join(session.code, token_b)
    await send(a, "question.ask", {"content": "Why?"})
    (asked,) = await of_type(b, "question.asked", 1)
    assert asked["upvotes"] == 0 and asked["answered"] is False and asked["seq"] == 1
    await send(b, "question.upvote", {"message_id": asked["message_id"]})
    (updated,) = await of_type(a, "question.updated", 1)
    assert updated == {
        "message_id": asked["message_id"],
        "upvotes": 1,
        "answered": False,
    }
    assert (await of_type(b, "question.updated", 1))[0]["upvotes"] == 1
    await send(
        b, "question.upvote", {"message_id": asked["message_id"]}, request_id="u2"
    )
    again = await next_of(b, "question.updated")
    assert again["payload"]["upvotes"] == 1
    assert again["request_id"] == "u2"  # the unchanged state, to the voter only
    await nothing_of(a, "question.updated")
    votes = await sync_to_async(QuestionVote.objects.count)()
    assert votes == 1
    await disconnect_all(a, b)


async def test_upvote_of_unknown_or_chat_message_is_not_found(host):
    session = await create_session(host)
    _, token = await guest(session)
    comm, _ = await join(session.code, token)
    await send(comm, "chat.send", {"content": "not a question"})
    (chat,) = await of_type(comm, "chat.message", 1)
    for message_id in (chat["message_id"], 999_999):
        await send(comm, "question.upvote", {"message_id": message_id})
        error = await next_of(comm, "error")
        assert error["payload"]["code"] == "NOT_FOUND"
    await comm.disconnect()


async def test_only_the_host_answers(host):
    session = await create_session(host)
    _, token = await guest(session, "guest")
    g, _ = await join(session.code, token)
    h, welcome = await join(session.code, bearer=access_token(host))
    assert welcome["you"]["role"] == "host"
    await send(g, "question.ask", {"content": "When?"})
    (asked,) = await of_type(h, "question.asked", 1)
    await send(
        g, "question.answer", {"message_id": asked["message_id"]}, request_id="x"
    )
    error = await next_of(g, "error")
    assert error["payload"]["code"] == "FORBIDDEN"
    assert error["request_id"] == "x"
    await send(h, "question.answer", {"message_id": asked["message_id"]})
    (updated,) = await of_type(g, "question.updated", 1)
    assert updated["answered"] is True
    await send(h, "question.answer", {"message_id": asked["message_id"]})
    assert (await next_of(h, "question.updated"))["payload"]["answered"] is True
    await send(
        h, "question.answer", {"message_id": asked["message_id"], "answered": False}
    )
    assert (await of_type(g, "question.updated", 1))[0]["answered"] is False
    await disconnect_all(g, h)


async def test_reconnect_with_since_replays_exactly_what_was_missed(host):
    session = await create_session(host)
    _, token_a = await guest(session, "stays")
    _, token_b = await guest(session, "phone")
    a, _ = await join(session.code, token_a)
    b, _ = await join(session.code, token_b)
    for i in range(2):
        await send(b, "chat.send", {"content": f"before-{i}"})
    seen = await of_type(b, "chat.message", 2)
    last = seen[-1]["seq"]
    await b.disconnect()  # the phone drops
    for i in range(3):
        await send(a, "chat.send", {"content": f"missed-{i}"})
    await of_type(a, "chat.message", 5)
    b2 = await connect(session.code, token=token_b, since=last)
    frames = await frames_until(b2, lambda f: f and f[-1]["type"] == "session.synced")
    types = [f["type"] for f in frames]
    assert types == ["session.welcome"] + ["chat.message"] * 3 + ["session.synced"]
    assert frames[0]["payload"]["last_seq"] == 5
    assert [f["payload"]["seq"] for f in frames[1:4]] == [3, 4, 5]
    assert [f["payload"]["content"] for f in frames[1:4]] == [
        "missed-0",
        "missed-1",
        "missed-2",
    ]
    assert frames[-1]["payload"] == {"last_seq": 5}
    await send(a, "chat.send", {"content": "live"})
    (live,) = await of_type(b2, "chat.message", 1)
    assert live["seq"] == 6
    await disconnect_all(a, b2)


async def test_messages_sent_while_connecting_arrive_once_in_order(host):
    session = await create_session(host)
    _, writer_token = await guest(session, "writer")
    _, reader_token = await guest(session, "reader")
    writer, _ = await join(session.code, writer_token)
    total = 30

    async def write():
        for i in range(total):
            await send(writer, "chat.send", {"content": str(i)})
            await asyncio.sleep(0.005)

    task = asyncio.create_task(write())
    await asyncio.sleep(0.03)  # some stored before the reader connects, some after
    reader = await connect(session.code, token=reader_token, since=0)
    await task
    frames = await frames_until(
        reader,
        lambda f: any(
            x["type"] == "chat.message" and x["payload"]["seq"] == total for x in f
        ),
        timeout=10,
    )
    seqs = [f["payload"]["seq"] for f in frames if f["type"] == "chat.message"]
    assert seqs == list(range(1, total + 1))
    await disconnect_all(writer, reader)


async def test_since_beyond_last_seq_and_invalid_since(host):
    session = await create_session(host)
    _, token = await guest(session)
    comm = await connect(session.code, token=token, since=50)
    frames = await frames_until(comm, lambda f: f and f[-1]["type"] == "session.synced")
    assert [f["type"] for f in frames] == ["session.welcome", "session.synced"]
    assert frames[-1]["payload"] == {"last_seq": 0}
    await comm.disconnect()
    comm = await connect(session.code, token=token, since="-1")
    assert (await recv(comm))["type"] == "session.welcome"
    error = await recv(comm)
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert "since" in error["payload"]["message"]
    await comm.disconnect()


async def test_retried_client_id_is_stored_once_and_resent_to_sender_only(host):
    session = await create_session(host)
    _, token_a = await guest(session, "a")
    _, token_b = await guest(session, "b")
    a, _ = await join(session.code, token_a)
    b, _ = await join(session.code, token_b)
    await send(a, "chat.send", {"content": "once", "client_id": "k1"})
    (first,) = await of_type(a, "chat.message", 1)
    await of_type(b, "chat.message", 1)
    await send(a, "chat.send", {"content": "once", "client_id": "k1"}, request_id="r2")
    again = await next_of(a, "chat.message")
    assert again["request_id"] == "r2"
    assert again["payload"] == first
    await nothing_of(b, "chat.message")
    count = await sync_to_async(Message.objects.count)()
    assert count == 1
    # The same client_id from someone else is their own message.
    await send(b, "chat.send", {"content": "mine", "client_id": "k1"})
    assert (await of_type(b, "chat.message", 1))[0]["seq"] == 2
    await disconnect_all(a, b)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"content": "x" * 2001}, "payload.content"),
        ({"content": ""}, "payload.content"),
        ({"content": "   "}, "blank"),
        ({"content": 5}, "payload.content"),
        ({}, "payload.content"),
        ({"content": "hi", "extra": 1}, "payload.extra"),
        ({"content": "hi", "client_id": "bad id!"}, "payload.client_id"),
    ],
)
async def test_invalid_chat_is_refused_and_takes_no_seq(host, payload, fragment):
    session = await create_session(host)
    _, token = await guest(session)
    comm, _ = await join(session.code, token)
    await send(comm, "chat.send", payload, request_id="bad")
    error = await next_of(comm, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert fragment in error["payload"]["message"]
    assert error["request_id"] == "bad"
    await send(comm, "chat.send", {"content": "y" * 2000})  # the limit itself is fine
    (ok,) = await of_type(comm, "chat.message", 1)
    assert ok["seq"] == 1 and len(ok["content"]) == 2000
    await comm.disconnect()


async def test_client_cannot_name_internal_events(host):
    session = await create_session(host)
    _, token = await guest(session)
    comm, _ = await join(session.code, token)
    for type_ in ("realtime.fanout", "websocket.disconnect", "session.welcome"):
        await send(comm, type_, {"text": "x", "seq": 1})
        error = await next_of(comm, "error")
        assert error["payload"]["code"] == "UNKNOWN_TYPE"
    await comm.disconnect()


async def test_unknown_code_closes_4004(host, user):
    for code in ("ABCDEFGH", "no-such-thing", "x" * 70):
        comm = await connect(code, bearer=access_token(user))
        assert await closed_with(comm) == 4004
        await comm.disconnect()


async def test_guest_token_of_another_session_closes_4005(host):
    session_a = await create_session(host, title="A")
    session_b = await create_session(host, title="B")
    _, token_a = await guest(session_a)
    comm = await connect(session_b.code, token=token_a)
    assert await closed_with(comm) == 4005
    await comm.disconnect()


async def test_forged_or_foreign_scoped_tokens_close_4005(host):
    session = await create_session(host)
    other = await create_session(host, title="other")
    _, _ = await guest(other)
    foreign_pid = await sync_to_async(
        lambda: Participant.objects.filter(session=other).last().pk
    )()
    for claims in (
        {"kind": "camera", "session": session.code},
        {"kind": "participant", "pid": foreign_pid, "session": session.code},
        {"kind": "participant", "pid": "1", "session": session.code},
    ):
        comm = await connect(session.code, token=scoped_token_issue(claims, ttl=60))
        assert await closed_with(comm) == 4005, claims
        await comm.disconnect()


async def test_no_credential_4008_and_closed_session_4010(host):
    session = await create_session(host)
    comm = await connect(session.code)
    assert await closed_with(comm) == 4008
    await comm.disconnect()
    _, token = await guest(session)
    await sync_to_async(session_close)(session_id=session.pk)
    comm = await connect(session.code, token=token)
    assert await closed_with(comm) == 4010
    await comm.disconnect()


async def test_lower_case_code_finds_the_session(host):
    session = await create_session(host)
    _, token = await guest(session)
    comm, welcome = await join(session.code.lower(), token)
    assert welcome["session"]["code"] == session.code
    await comm.disconnect()


async def test_signed_in_user_becomes_a_member_once(host, make_user):
    session = await create_session(host)
    member = await sync_to_async(make_user)("member")
    tab1, welcome = await join(session.code, access_token(member))
    assert welcome["you"]["role"] == "member"
    assert welcome["you"]["nickname"] == "member"
    tab2, welcome2 = await join(session.code, bearer=access_token(member))
    assert welcome2["you"] == welcome["you"]
    rows = await sync_to_async(Participant.objects.filter(session=session).count)()
    assert rows == 2  # the host (created with the session) and the member
    await disconnect_all(tab1, tab2)


async def test_host_closes_the_session_for_everyone(host):
    session = await create_session(host)
    _, token = await guest(session)
    g, _ = await join(session.code, token)
    h, _ = await join(session.code, bearer=access_token(host))
    await send(g, "session.close", {})
    assert (await next_of(g, "error"))["payload"]["code"] == "FORBIDDEN"
    await send(h, "session.close", {})
    for comm in (g, h):
        closed = await next_of(comm, "session.closed")
        assert closed["payload"]["code"] == session.code
        assert closed["payload"]["closed_at"].endswith("Z")
        assert await closed_with(comm) == 4010
    await disconnect_all(g, h)


async def test_participant_update_renames_everywhere(host):
    session = await create_session(host)
    pid, token_a = await guest(session, "old")
    _, token_b = await guest(session, "bob")
    a, _ = await join(session.code, token_a)
    b, _ = await join(session.code, token_b)
    await send(a, "participant.update", {"nickname": "  New   name "})
    expected = {"participant_id": pid, "nickname": "New name", "role": "guest"}
    assert (await of_type(b, "participant.updated", 1))[0] == expected
    assert (await of_type(a, "participant.updated", 1))[0] == expected
    await send(a, "chat.send", {"content": "hi"})
    assert (await of_type(b, "chat.message", 1))[0]["nickname"] == "New name"
    await send(a, "participant.update", {"nickname": "   "})
    error = await next_of(a, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert "payload.nickname" in error["payload"]["message"]
    c, welcome = await join(session.code, (await guest(session, "cy"))[1])
    assert {"participant_id": pid, "nickname": "New name", "role": "guest"} in welcome[
        "online"
    ]
    await disconnect_all(a, b, c)


async def test_moderated_questions_wait_for_the_host(host):
    session = await create_session(host, moderated=True)
    _, token = await guest(session, "asker")
    _, token_other = await guest(session, "other")
    g, _ = await join(session.code, token)
    other, _ = await join(session.code, token_other)
    h, _ = await join(session.code, bearer=access_token(host))
    await send(g, "question.ask", {"content": "Pending?"}, request_id="q1")
    mine = await next_of(g, "question.pending")
    assert mine["request_id"] == "q1" and mine["payload"]["seq"] is None
    (pending,) = await of_type(h, "question.pending", 1)
    assert pending["content"] == "Pending?"
    await send(g, "question.upvote", {"message_id": pending["message_id"]})
    assert (await next_of(g, "error"))["payload"]["code"] == "NOT_FOUND"
    await send(other, "question.approve", {"message_id": pending["message_id"]})
    assert (await next_of(other, "error"))["payload"]["code"] == "FORBIDDEN"
    # Meanwhile chat keeps seq 1: the pending question took none.
    await send(other, "chat.send", {"content": "chat"})
    assert (await of_type(h, "chat.message", 1))[0]["seq"] == 1
    # A host reconnecting sees the queue again.
    h2, _ = await join(session.code, bearer=access_token(host))
    assert (await of_type(h2, "question.pending", 1))[0]["message_id"] == pending[
        "message_id"
    ]
    await send(h, "question.approve", {"message_id": pending["message_id"]})
    for comm in (g, other, h):
        asked = (await of_type(comm, "question.asked", 1))[0]
        assert asked["seq"] == 2 and asked["message_id"] == pending["message_id"]
    await send(h, "question.approve", {"message_id": pending["message_id"]})
    assert (await next_of(h, "error"))["payload"]["code"] == "NOT_FOUND"
    # The host's own questions need no approval.
    await send(h, "question.ask", {"content": "From the host"})
    assert (await of_type(g, "question.asked", 1))[0]["seq"] == 3
    await disconnect_all(g, other, h, h2)


async def test_host_hides_messages_and_rejects_pending_questions(host):
    session = await create_session(host, moderated=True)
    _, token = await guest(session, "g")
    g, _ = await join(session.code, token)
    h, _ = await join(session.code, bearer=access_token(host))
    await send(g, "chat.send", {"content": "rude"})
    (chat,) = await of_type(h, "chat.message", 1)
    await send(g, "message.hide", {"message_id": chat["message_id"]})
    assert (await next_of(g, "error"))["payload"]["code"] == "FORBIDDEN"
    await send(h, "message.hide", {"message_id": chat["message_id"]})
    hidden = (await of_type(g, "message.hidden", 1))[0]
    assert hidden == {"message_id": chat["message_id"], "seq": 1}
    assert (await of_type(h, "message.hidden", 1))[0] == hidden
    await send(h, "message.hide", {"message_id": chat["message_id"]}, request_id="h2")
    assert (await next_of(h, "message.hidden"))["request_id"] == "h2"
    # Pending question rejected: only hosts hear of it.
    await send(g, "question.ask", {"content": "spam?"})
    (pending,) = await of_type(h, "question.pending", 1)
    await send(h, "message.hide", {"message_id": pending["message_id"]})
    assert (await of_type(h, "message.hidden", 1))[0]["seq"] is None
    await nothing_of(g, "message.hidden")
    await send(h, "message.hide", {"message_id": 10**9})
    assert (await next_of(h, "error"))["payload"]["code"] == "NOT_FOUND"
    # Replay and history show a tombstone in the hidden message's place.
    late, _ = await join(session.code, (await guest(session, "late"))[1], since=0)
    (replayed,) = await of_type(late, "chat.message", 1)
    assert replayed["seq"] == 1 and replayed["hidden"] is True
    assert replayed["content"] == ""
    await disconnect_all(g, h, late)


async def test_replay_goes_in_batches(host, monkeypatch):
    monkeypatch.setattr("sessions_app.joining.REPLAY_BATCH", 2)
    session = await create_session(host)
    _, token = await guest(session, "writer")
    writer, _ = await join(session.code, token)
    for i in range(5):
        await send(writer, "chat.send", {"content": str(i)})
    await of_type(writer, "chat.message", 5)
    reader = await connect(session.code, token=token, since=0)
    frames = await frames_until(
        reader, lambda f: f and f[-1]["type"] == "session.synced"
    )
    seqs = [f["payload"]["seq"] for f in frames if f["type"] == "chat.message"]
    assert seqs == [1, 2, 3, 4, 5]
    await disconnect_all(writer, reader)


async def test_writes_to_a_session_closed_behind_our_back_close_4010(host):
    """Closed without notifying (another process crashed mid-close, say)."""
    for type_, payload in (
        ("chat.send", {"content": "late"}),
        ("session.close", {}),
        ("question.approve", {"message_id": 1}),
    ):
        session = await create_session(host)
        comm, _ = await join(session.code, bearer=access_token(host))
        await sync_to_async(session_close)(session_id=session.pk)
        await send(comm, type_, payload)
        assert await closed_with(comm) == 4010, type_
        await comm.disconnect()


async def test_a_removed_participant_is_closed_4005(host):
    for type_, payload in (
        ("chat.send", {"content": "still here?"}),
        ("participant.update", {"nickname": "ghost"}),
    ):
        session = await create_session(host)
        pid, token = await guest(session, "kicked")
        comm, _ = await join(session.code, token)
        await sync_to_async(Participant.objects.filter(pk=pid).delete)()
        await send(comm, type_, payload)
        assert await closed_with(comm) == 4005, type_
        await comm.disconnect()


async def test_host_only_types_are_refused_before_any_database_work(host, monkeypatch):
    import sessions_app.consumers as consumers

    def must_not_run(**kwargs):
        raise AssertionError("a non-host reached the database thread")

    for name in (
        "question_answer",
        "question_approve",
        "message_hide",
        "session_close",
    ):
        monkeypatch.setattr(consumers, name, must_not_run)
    session = await create_session(host)
    _, token = await guest(session, "guest")
    g, _ = await join(session.code, token)
    for type_, payload in (
        ("question.answer", {"message_id": 1}),
        ("question.approve", {"message_id": 1}),
        ("message.hide", {"message_id": 1}),
        ("session.close", {}),
    ):
        await send(g, type_, payload, request_id=type_)
        error = await next_of(g, "error")
        assert error["payload"]["code"] == "FORBIDDEN", error
        assert error["request_id"] == type_
    await disconnect_all(g)


async def test_a_connected_socket_keeps_under_30_attributes(host, monkeypatch):
    """CPython keeps up to 29 instance attributes in a compact shared layout; the
    30th turns them into a dict of their own, ~1.3 KB more per socket (bench W2
    counts server memory per connection). Defaults live on the classes."""
    from sessions_app.consumers import SessionConsumer

    connected = []
    real = SessionConsumer.on_connect

    async def spy(self):
        await real(self)
        connected.append(self)

    monkeypatch.setattr(SessionConsumer, "on_connect", spy)
    session = await create_session(host)
    comm, _ = await join(session.code, (await guest(session, "ann"))[1])
    assert len(vars(connected[0])) < 30, sorted(vars(connected[0]))
    await comm.disconnect()
