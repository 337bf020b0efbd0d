"""/ws/messenger/ through config.asgi.application on the in-memory layer.

Alice and Bob, Bob on two devices (two sockets of one user); Carol shares nothing.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from realtime import presence as realtime_presence
from realtime.tokens import scoped_token_issue
from sessions_app.messenger import presence, services
from sessions_app.messenger.models import ConversationMessage
from tests.conftest import access_token, closed_with, communicator, recv, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def device(user) -> tuple:
    """A connected messenger socket of ``user`` and its ``system.connected``."""
    comm = communicator("/ws/messenger/", token=access_token(user))
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm, await next_of(comm, "system.connected")


async def next_of(comm, type_: str, timeout: float = 3) -> dict:
    """The next frame of ``type_`` (others skipped): its payload, request_id kept."""
    while True:
        frame = await recv(comm, timeout)
        if frame["type"] == type_:
            return {**frame["payload"], "_request_id": frame.get("request_id")}


async def nothing_of(comm, type_: str, wait: float = 0.3) -> bool:
    """No frame of ``type_`` within ``wait`` (others are read and skipped)."""
    while not await comm.receive_nothing(wait):
        if (await recv(comm))["type"] == type_:
            return False
    return True


async def subscribe(comm, conversation, since=None) -> dict:
    payload = {"conversation_id": str(conversation.pk)}
    if since is not None:
        payload["since"] = since
    await send(comm, "conversation.subscribe", payload)
    return await next_of(comm, "conversation.subscribed")


async def say(comm, conversation, content: str, **extra) -> None:
    payload = {"conversation_id": str(conversation.pk), "content": content, **extra}
    await send(comm, "message.send", payload, request_id=extra.get("client_id"))


async def error_of(comm, type_: str, payload: dict) -> dict:
    await send(comm, type_, payload, request_id="r1")
    error = await next_of(comm, "error")
    assert error["_request_id"] == "r1"
    return error


@pytest.fixture
def direct(alice, bob):
    conversation, _ = services.conversation_create(
        user=alice, member_ids=[bob.pk], kind="direct"
    )
    return conversation


async def test_a_message_reaches_both_of_bobs_devices_with_one_seq(direct, alice, bob):
    a, _ = await device(alice)
    b1, _ = await device(bob)
    b2, _ = await device(bob)
    for comm in (a, b1, b2):
        assert (await subscribe(comm, direct))["last_seq"] == 0
    await say(a, direct, "hi bob", client_id="c1")
    got = [await next_of(comm, "message.new") for comm in (a, b1, b2)]
    assert {(m["seq"], m["content"], m["sender_id"]) for m in got} == {
        (1, "hi bob", alice.pk)
    }
    for comm in (a, b1, b2):
        await comm.disconnect()


async def test_online_and_offline_on_first_device_on_and_last_device_off(
    direct, alice, bob
):
    a, hello = await device(alice)
    assert hello["user_id"] == alice.pk and hello["online"] == []
    b1, bobs_hello = await device(bob)
    assert bobs_hello["online"] == [alice.pk]
    assert (await next_of(a, "user.online")) == {"user_id": bob.pk, "_request_id": None}
    b2, _ = await device(bob)  # a second device: nobody is told again
    assert await nothing_of(a, "user.online")
    await b1.disconnect()  # one device left: still online
    assert await nothing_of(a, "user.offline")
    await b2.disconnect()
    gone = await next_of(a, "user.offline")
    assert gone["user_id"] == bob.pk and gone["last_seen"].endswith("Z")
    await a.disconnect()


async def test_a_dead_servers_devices_go_offline_by_the_sweep(
    direct, alice, bob, settings
):
    """A process that dies says nothing: its presence entries expire, and each
    process's sweep tells its own sockets that watched the user."""
    settings.MESSENGER_PRESENCE_SWEEP = 0.05
    a, _ = await device(alice)
    b, _ = await device(bob)
    await next_of(a, "user.online")
    # Bob's server "dies": its entries vanish (TTL) and no goodbye is sent.
    realtime_presence.reset_store()
    gone = await next_of(a, "user.offline", timeout=3)
    assert gone["user_id"] == bob.pk
    assert await nothing_of(a, "user.offline")  # told once
    await a.disconnect()
    await b.disconnect()


async def test_a_rest_post_arrives_as_message_new(direct, alice, bob):
    b, _ = await device(bob)
    await subscribe(b, direct)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(alice)}")
    reply = await sync_to_async(client.post)(
        f"/api/conversations/{direct.pk}/messages/",
        {"content": "from REST"},
        format="json",
    )
    assert reply.status_code == 201
    new = await next_of(b, "message.new")
    assert (new["content"], new["seq"], new["message_id"]) == (
        "from REST",
        1,
        reply.json()["message_id"],
    )
    await b.disconnect()


async def test_edit_and_delete_are_the_authors_and_history_stays_gapless(
    direct, alice, bob
):
    a, _ = await device(alice)
    b, _ = await device(bob)
    await subscribe(a, direct)
    await subscribe(b, direct)
    await say(a, direct, "first")
    first = await next_of(b, "message.new")
    forbidden = await error_of(
        b, "message.edit", {"message_id": first["message_id"], "content": "mine now"}
    )
    assert forbidden["code"] == "FORBIDDEN"
    forbidden = await error_of(b, "message.delete", {"message_id": first["message_id"]})
    assert forbidden["code"] == "FORBIDDEN"
    await send(a, "message.edit", {"message_id": first["message_id"], "content": "1st"})
    edited = await next_of(b, "message.edited")
    assert (edited["content"], edited["seq"]) == ("1st", 1) and edited["edited_at"]
    await send(a, "message.delete", {"message_id": first["message_id"]})
    deleted = await next_of(b, "message.deleted")
    assert deleted["message_id"] == first["message_id"] and deleted["deleted_at"]
    await say(a, direct, "second")
    assert (await next_of(b, "message.new"))["seq"] == 2  # the tombstone kept 1
    # A late device replays the tombstone in its place.
    late, _ = await device(bob)
    await subscribe(late, direct, since=0)
    replayed = [await next_of(late, "message.new") for _ in range(2)]
    assert [(m["seq"], m["content"]) for m in replayed] == [(1, ""), (2, "second")]
    assert replayed[0]["deleted_at"]
    for comm in (a, b, late):
        await comm.disconnect()


async def test_receipts_never_move_back_and_unread_counts_follow(direct, alice, bob):
    a, _ = await device(alice)
    b, _ = await device(bob)  # bob is online but not subscribed: activity
    await subscribe(a, direct)
    for n in range(3):
        await say(a, direct, f"m{n}")
    ids = [(await next_of(a, "message.new"))["message_id"] for _ in range(3)]
    counts = [await next_of(b, "conversation.activity") for _ in range(3)]
    assert [(c["seq"], c["unread"], c["notify"]) for c in counts] == [
        (1, 1, True),
        (2, 2, True),
        (3, 3, True),
    ]
    await subscribe(b, direct)
    await send(b, "message.read", {"message_id": ids[1]})
    receipt = await next_of(a, "message.read")
    assert (receipt["user_id"], receipt["message_id"]) == (bob.pk, ids[1])
    await send(b, "message.read", {"message_id": ids[0]})  # older: nothing moves
    assert await nothing_of(a, "message.read")
    await send(b, "conversation.unsubscribe", {"conversation_id": str(direct.pk)})
    await next_of(b, "conversation.unsubscribed")
    await say(a, direct, "m3")
    assert (await next_of(b, "conversation.activity"))["unread"] == 2  # m2, m3
    await a.disconnect()
    await b.disconnect()


async def test_a_muted_conversation_counts_but_does_not_ring(direct, alice, bob):
    await sync_to_async(services.notification_set)(
        conversation_id=direct.pk, user=bob, muted=True
    )
    a, _ = await device(alice)
    b, _ = await device(bob)
    await say(a, direct, "psst")
    activity = await next_of(b, "conversation.activity")
    assert (activity["unread"], activity["notify"]) == (1, False)
    await a.disconnect()
    await b.disconnect()


async def test_reactions_toggle_and_count(direct, alice, bob):
    a, _ = await device(alice)
    b, _ = await device(bob)
    await subscribe(a, direct)
    await subscribe(b, direct)
    await say(a, direct, "react to me")
    message_id = (await next_of(b, "message.new"))["message_id"]
    for who in (a, b):
        await send(who, "message.react", {"message_id": message_id, "emoji": "👍"})
        await next_of(b, "message.reactions")
    await send(b, "message.react", {"message_id": message_id, "emoji": "👍"})
    counts = [await next_of(a, "message.reactions") for _ in range(3)]
    assert [c["reactions"] for c in counts] == [{"👍": 1}, {"👍": 2}, {"👍": 1}]
    await a.disconnect()
    await b.disconnect()


async def test_carol_gets_not_found_and_a_bad_uuid_invalid(direct, carol):
    c, hello = await device(carol)
    assert hello["online"] == []
    cid = str(direct.pk)
    for type_, payload in (
        ("conversation.subscribe", {"conversation_id": cid}),
        ("message.send", {"conversation_id": cid, "content": "let me in"}),
        ("typing", {"conversation_id": cid, "is_typing": True}),
    ):
        assert (await error_of(c, type_, payload))["code"] == "NOT_FOUND"
    bad = await error_of(c, "conversation.subscribe", {"conversation_id": "nope"})
    assert bad["code"] == "INVALID_MESSAGE"
    assert bad["message"].startswith("payload.conversation_id")
    blank = await error_of(c, "message.send", {"conversation_id": cid, "content": " "})
    assert blank["code"] in {"INVALID_MESSAGE", "NOT_FOUND"}
    assert not await sync_to_async(ConversationMessage.objects.exists)()
    await c.disconnect()


async def test_a_removed_member_stops_receiving_at_once(alice, bob, carol):
    group, _ = await sync_to_async(services.conversation_create)(
        user=alice, member_ids=[bob.pk, carol.pk], kind="group", title="T"
    )
    a, _ = await device(alice)
    c, _ = await device(carol)
    await subscribe(a, group)
    await subscribe(c, group)
    await sync_to_async(services.member_remove)(
        conversation_id=group.pk, user=alice, user_id=carol.pk
    )
    removed = await next_of(c, "member.removed")
    assert removed == {
        "conversation_id": str(group.pk),
        "user_id": carol.pk,
        "_request_id": None,
    }
    await say(a, group, "after carol left")
    await next_of(a, "message.new")
    await send(a, "typing", {"conversation_id": str(group.pk), "is_typing": True})
    assert await nothing_of(c, "message.new")
    assert await nothing_of(c, "typing", wait=0.1)
    assert await nothing_of(c, "conversation.activity", wait=0.1)
    await a.disconnect()
    await c.disconnect()


async def test_subscribe_with_since_replays_exactly_the_missed_then_synced(
    direct, alice, bob
):
    a, _ = await device(alice)
    for n in range(5):
        await sync_to_async(services.message_send)(
            conversation_id=direct.pk, user=alice, content=f"m{n + 1}"
        )
    b, _ = await device(bob)
    subscribed = await subscribe(b, direct, since=2)
    assert subscribed["last_seq"] == 5
    replayed = [(await next_of(b, "message.new"))["seq"] for _ in range(3)]
    assert replayed == [3, 4, 5]
    synced = await next_of(b, "conversation.synced")
    assert synced["last_seq"] == 5
    await say(a, direct, "live")
    assert (await next_of(b, "message.new"))["seq"] == 6
    await a.disconnect()
    await b.disconnect()


async def test_messages_sent_while_subscribing_arrive_once_in_order(direct, alice, bob):
    b, _ = await device(bob)

    async def write() -> None:
        for n in range(20):
            await sync_to_async(services.message_send)(
                conversation_id=direct.pk, user=alice, content=f"m{n}"
            )

    writer = asyncio.ensure_future(write())
    await asyncio.sleep(0.01)
    await subscribe(b, direct, since=0)
    await writer
    seqs = []
    while len(seqs) < 20:
        frame = await recv(b)
        if frame["type"] == "message.new":
            seqs.append(frame["payload"]["seq"])
    assert seqs == list(range(1, 21))
    await b.disconnect()


async def test_a_retried_client_id_is_stored_once(direct, alice):
    a, _ = await device(alice)  # not subscribed: the message is the answer
    await say(a, direct, "once", client_id="retry-1")
    first = await next_of(a, "message.new")
    assert first["_request_id"] == "retry-1"
    await say(a, direct, "once", client_id="retry-1")
    again = await next_of(a, "message.new")
    assert again["message_id"] == first["message_id"] and again["seq"] == 1
    count = await sync_to_async(ConversationMessage.objects.count)()
    assert count == 1
    await a.disconnect()


async def test_typing_goes_to_the_other_subscribers_not_back(direct, alice, bob):
    a, _ = await device(alice)
    b, _ = await device(bob)
    await subscribe(a, direct)
    await subscribe(b, direct)
    await send(a, "typing", {"conversation_id": str(direct.pk), "is_typing": True})
    typing = await next_of(b, "typing")
    assert (typing["user_id"], typing["is_typing"]) == (alice.pk, True)
    assert await nothing_of(a, "typing")
    await a.disconnect()
    await b.disconnect()


async def test_new_conversations_and_members_reach_every_device(alice, bob, carol):
    b, _ = await device(bob)
    group, _ = await sync_to_async(services.conversation_create)(
        user=alice, member_ids=[bob.pk], kind="group", title="New"
    )
    created = await next_of(b, "conversation.created")
    assert created["conversation_id"] == str(group.pk)
    await sync_to_async(services.message_send)(
        conversation_id=group.pk, user=alice, content="hello"
    )
    activity = await next_of(b, "conversation.activity")
    assert (activity["conversation_id"], activity["unread"]) == (str(group.pk), 1)
    await sync_to_async(services.member_add)(
        conversation_id=group.pk, user=alice, user_id=carol.pk
    )
    assert (await next_of(b, "member.added"))["user_id"] == carol.pk
    await b.disconnect()


async def test_new_contacts_learn_each_others_presence(alice, bob):
    """Alice and Bob are online but share nothing; a conversation between them makes
    them contacts, and each is told the other is on."""
    a, hello = await device(alice)
    b, _ = await device(bob)
    assert hello["online"] == []
    await sync_to_async(services.conversation_create)(
        user=alice, member_ids=[bob.pk], kind="direct"
    )
    assert (await next_of(a, "user.online"))["user_id"] == bob.pk
    assert (await next_of(b, "user.online"))["user_id"] == alice.pk
    await b.disconnect()
    assert (await next_of(a, "user.offline"))["user_id"] == bob.pk
    await a.disconnect()


async def test_guests_and_strangers_are_refused(alice):
    guest = scoped_token_issue(
        {"kind": "participant", "session": "ABCDEFGH", "pid": 1}, ttl=60
    )
    comm = communicator("/ws/messenger/", token=guest)
    await comm.connect(timeout=5)
    assert await closed_with(comm) == 4005
    comm = communicator("/ws/messenger/")
    await comm.connect(timeout=5)
    assert await closed_with(comm) == 4008


async def test_the_sweep_keeps_watching_online_contacts(direct, alice, bob, settings):
    """Contacts still online are left alone by the sweep."""
    settings.MESSENGER_PRESENCE_SWEEP = 0.05
    a, _ = await device(alice)
    b, _ = await device(bob)
    await next_of(a, "user.online")
    await asyncio.sleep(0.2)  # a few sweeps run
    assert await nothing_of(a, "user.offline", wait=0.1)
    assert presence.is_online(bob.pk)
    await a.disconnect()
    await b.disconnect()
