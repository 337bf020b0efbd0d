"""Messenger services: seqs, dedupe, edits, tombstones, reactions, reads, members."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, transaction

from realtime.errors import Conflict, Invalid, NotFound, PermissionDenied
from sessions_app.messenger import selectors, services
from sessions_app.messenger.models import (
    Conversation,
    ConversationMember,
    ConversationMessage,
    MessageRevision,
)

pytestmark = pytest.mark.django_db


def send(conversation, user, content="hi", **extra):
    message, _ = services.message_send(
        conversation_id=conversation.pk, user=user, content=content, **extra
    )
    return message


# ----------------------------------------------------------------------- model
def test_a_pair_has_one_direct_conversation(alice, bob):
    first, created = services.conversation_create(user=alice, member_ids=[bob.pk])
    again, again_created = services.conversation_create(user=bob, member_ids=[alice.pk])
    assert first.kind == "direct" and created and not again_created
    assert again.pk == first.pk
    assert selectors.member_ids(conversation_id=first.pk) == {alice.pk, bob.pk}
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.create(kind="direct", direct_key=first.direct_key)


def test_seq_is_unique_per_conversation(group, alice):
    message = send(group, alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        ConversationMessage.objects.create(conversation=group, seq=message.seq)


def test_a_group_has_no_direct_key(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.create(kind="group", direct_key="1:2")


# ----------------------------------------------------------------------- create
def test_group_creator_is_owner_and_members_join(group, alice, bob):
    roles = dict(
        ConversationMember.objects.filter(conversation=group).values_list(
            "user_id", "role"
        )
    )
    assert roles == {alice.pk: "owner", bob.pk: "member"}
    assert group.title == "Team"


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"member_ids": "1"}, "member_ids"),
        ({"member_ids": [999999]}, "member_ids"),
        ({"member_ids": [True]}, "member_ids"),
        ({"member_ids": [], "kind": "direct"}, "member_ids"),
        ({"member_ids": [], "kind": "channel"}, "kind"),
        ({"member_ids": [], "title": "x" * 201}, "title"),
    ],
)
def test_create_refuses_bad_input(alice, kwargs, field):
    with pytest.raises(Invalid) as caught:
        services.conversation_create(user=alice, **kwargs)
    assert caught.value.field == field


def test_direct_has_no_title(alice, bob):
    with pytest.raises(Invalid) as caught:
        services.conversation_create(
            user=alice, member_ids=[bob.pk], kind="direct", title="x"
        )
    assert caught.value.field == "title"


def test_a_group_has_at_most_the_member_limit(alice, bob, carol, settings):
    settings.MESSENGER_MAX_MEMBERS = 2
    with pytest.raises(Invalid):
        services.conversation_create(user=alice, member_ids=[bob.pk, carol.pk])
    conversation, _ = services.conversation_create(
        user=alice, member_ids=[bob.pk, alice.pk], kind="group"
    )
    assert conversation.kind == "group"
    with pytest.raises(Conflict):
        services.member_add(
            conversation_id=conversation.pk, user=alice, user_id=carol.pk
        )


# ----------------------------------------------------------------------- seqs
def test_seqs_are_gapless_across_sends_and_deletes(group, alice, bob):
    first, second = send(group, alice), send(group, bob)
    services.message_delete(message_id=second.pk, user=bob)
    third = send(group, alice)
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    group.refresh_from_db()
    assert group.last_seq == 3


def test_a_refused_send_takes_no_seq(group, alice, carol):
    send(group, alice)
    with pytest.raises(Invalid):
        send(group, alice, content="   ")
    with pytest.raises(NotFound):
        send(group, carol)
    with pytest.raises(Invalid) as caught:
        send(group, alice, reply_to=99999)
    assert caught.value.field == "reply_to"
    assert send(group, alice).seq == 2


def test_a_retried_send_is_stored_once(group, alice, bob, pushed):
    first, created = services.message_send(
        conversation_id=group.pk, user=alice, content="hi", client_id="c1"
    )
    again, again_created = services.message_send(
        conversation_id=str(group.pk), user=alice, content="hi?", client_id="c1"
    )
    assert created and not again_created
    assert again.pk == first.pk and again.content == "hi"
    other = send(group, bob, client_id="c1")  # another sender's c1 is another message
    assert ConversationMessage.objects.filter(conversation=group).count() == 2
    assert other.seq == 2
    assert len(pushed.of("message.new")) == 2


def test_a_concurrent_duplicate_returns_the_original(group, alice, monkeypatch):
    first = send(group, alice, client_id="c1")
    calls = []
    real = ConversationMessage.objects.filter

    def blind(*args, **kwargs):  # the duplicate check misses it the first time
        if "client_id" in kwargs and not calls:
            calls.append(1)
            return real(pk=-1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ConversationMessage.objects, "filter", blind)
    again, created = services.message_send(
        conversation_id=group.pk, user=alice, content="x", client_id="c1"
    )
    assert again.pk == first.pk and not created


def test_reply_to_is_kept_and_pushed(group, alice, bob, pushed):
    first = send(group, alice)
    reply = send(group, bob, content="re", reply_to=first.pk)
    assert reply.reply_to_id == first.pk
    assert pushed.of("message.new")[-1][1]["reply_to"] == first.pk


@pytest.mark.parametrize(
    "content,limit", [("", None), (" \n", None), (None, None), ("x" * 11, 10)]
)
def test_content_must_be_text_within_the_limit(group, alice, content, limit, settings):
    if limit:
        settings.MESSENGER_MAX_CONTENT = limit
    with pytest.raises(Invalid) as caught:
        send(group, alice, content=content)
    assert caught.value.field == "content"


@pytest.mark.parametrize("raw", ["nope", 12, None, "1234"])
def test_a_malformed_conversation_id_is_invalid(alice, raw):
    with pytest.raises(Invalid) as caught:
        services.message_send(conversation_id=raw, user=alice, content="hi")
    assert caught.value.field == "conversation_id"


def test_client_id_is_checked(group, alice):
    with pytest.raises(Invalid) as caught:
        send(group, alice, client_id="x" * 65)
    assert caught.value.field == "client_id"


# ----------------------------------------------------------------------- edit, delete
def test_only_the_author_edits_and_history_is_kept(group, alice, bob, pushed):
    message = send(group, alice, content="v1")
    with pytest.raises(PermissionDenied):
        services.message_edit(message_id=message.pk, user=bob, content="mine")
    services.message_edit(message_id=message.pk, user=alice, content="v2")
    same = services.message_edit(message_id=message.pk, user=alice, content="v2")
    edited = services.message_edit(
        message_id=message.pk, user=alice, content="v3", conversation_id=group.pk
    )
    assert same.content == "v2" and edited.content == "v3" and edited.edited_at
    assert list(
        MessageRevision.objects.filter(message=message).values_list(
            "content", flat=True
        )
    ) == ["v1", "v2"]
    frames = pushed.of("message.edited")
    assert [p["content"] for _, p, _ in frames] == ["v2", "v3"]
    group_name, payload, seq = frames[-1]
    assert group_name == f"conversation.{group.pk}" and seq is None
    assert payload["message_id"] == message.pk and payload["seq"] == 1


def test_delete_leaves_a_tombstone(group, alice, bob, pushed):
    message = send(group, alice, content="oops")
    services.message_edit(message_id=message.pk, user=alice, content="oops2")
    services.reaction_toggle(message_id=message.pk, user=bob, emoji="👍")
    with pytest.raises(PermissionDenied):
        services.message_delete(message_id=message.pk, user=bob)
    gone = services.message_delete(message_id=message.pk, user=alice)
    again = services.message_delete(message_id=message.pk, user=alice)
    stored = ConversationMessage.objects.get(pk=message.pk)
    assert gone.deleted_at and stored.content == "" and stored.seq == 1
    assert again.deleted_at == gone.deleted_at
    assert not stored.revisions.exists() and not stored.reactions.exists()
    assert len(pushed.of("message.deleted")) == 1
    _, payload, _ = pushed.of("message.deleted")[0]
    assert payload["message_id"] == message.pk and payload["seq"] == 1
    with pytest.raises(Conflict):
        services.message_edit(message_id=message.pk, user=alice, content="back")
    with pytest.raises(Conflict):
        services.reaction_toggle(message_id=message.pk, user=bob, emoji="👍")


def test_a_message_of_another_conversation_is_not_found(group, alice, bob, carol):
    other, _ = services.conversation_create(user=alice, member_ids=[carol.pk])
    message = send(other, alice)
    with pytest.raises(NotFound):
        services.message_edit(
            message_id=message.pk, user=alice, content="x", conversation_id=group.pk
        )
    with pytest.raises(NotFound):
        services.message_delete(message_id=message.pk, user=bob)


# ----------------------------------------------------------------------- reactions
def test_reactions_toggle_and_count(group, alice, bob, pushed):
    message = send(group, alice)
    assert services.reaction_toggle(message_id=message.pk, user=bob, emoji="👍") == (
        {"👍": 1},
        True,
    )
    services.reaction_toggle(message_id=message.pk, user=alice, emoji="👍")
    counts, added = services.reaction_toggle(
        message_id=message.pk, user=alice, emoji="🎉"
    )
    assert counts == {"👍": 2, "🎉": 1} and added
    counts, added = services.reaction_toggle(
        message_id=message.pk, user=bob, emoji="👍"
    )
    assert counts == {"👍": 1, "🎉": 1} and not added
    _, payload, _ = pushed.of("message.reactions")[-1]
    assert payload == {
        "conversation_id": str(group.pk),
        "message_id": message.pk,
        "reactions": {"👍": 1, "🎉": 1},
    }


@pytest.mark.parametrize("emoji", ["", "a b", "x" * 33, 5])
def test_a_bad_emoji_is_invalid(group, alice, emoji):
    message = send(group, alice)
    with pytest.raises(Invalid) as caught:
        services.reaction_toggle(message_id=message.pk, user=alice, emoji=emoji)
    assert caught.value.field == "emoji"


# ----------------------------------------------------------------------- reading
def unread(conversation, user):
    return selectors.conversation_detail(
        conversation_id=conversation.pk, user=user
    ).unread


def test_read_position_never_moves_back_and_unread_follows(group, alice, bob, pushed):
    messages = [send(group, alice, content=str(i)) for i in range(4)]
    send(group, bob)  # bob's own message is never unread for bob
    assert unread(group, bob) == 4 and unread(group, alice) == 1
    member, moved = services.read_mark(user=bob, message_id=messages[2].pk)
    assert moved and member.last_read_seq == 3 and unread(group, bob) == 1
    member, moved = services.read_mark(user=bob, message_id=messages[0].pk)
    assert not moved and member.last_read_seq == 3
    member, moved = services.read_mark(user=bob, conversation_id=group.pk, seq=1)
    assert not moved and unread(group, bob) == 1
    services.message_delete(message_id=messages[3].pk, user=alice)
    assert unread(group, bob) == 0  # a deleted message is not unread
    reads = pushed.of("message.read")
    assert len(reads) == 1
    assert reads[0][1]["user_id"] == bob.pk
    assert reads[0][1]["message_id"] == messages[2].pk and reads[0][1]["read_at"]


def test_read_by_seq(group, alice, bob):
    send(group, alice), send(group, alice)
    member, moved = services.read_mark(user=bob, conversation_id=group.pk, seq="2")
    assert moved and member.last_read_seq == 2
    with pytest.raises(NotFound):
        services.read_mark(user=bob, conversation_id=group.pk, seq=9)
    with pytest.raises(Invalid):
        services.read_mark(user=bob, conversation_id=group.pk)


def test_muted_is_stored(group, bob):
    member = services.notification_set(conversation_id=group.pk, user=bob, muted=True)
    assert member.muted
    assert selectors.conversation_detail(
        conversation_id=group.pk, user=bob
    ).member.muted
    with pytest.raises(Invalid):
        services.notification_set(conversation_id=group.pk, user=bob, muted="yes")


# ----------------------------------------------------------------------- strangers
def test_a_non_member_gets_not_found_from_every_service(group, alice, carol):
    message = send(group, alice)
    cid = group.pk
    calls = [
        lambda: services.conversation_update(
            conversation_id=cid, user=carol, title="x"
        ),
        lambda: services.conversation_delete(conversation_id=cid, user=carol),
        lambda: services.member_add(conversation_id=cid, user=carol, user_id=carol.pk),
        lambda: services.member_remove(
            conversation_id=cid, user=carol, user_id=alice.pk
        ),
        lambda: services.message_send(conversation_id=cid, user=carol, content="x"),
        lambda: services.message_edit(message_id=message.pk, user=carol, content="x"),
        lambda: services.message_delete(message_id=message.pk, user=carol),
        lambda: services.reaction_toggle(message_id=message.pk, user=carol, emoji="x"),
        lambda: services.read_mark(user=carol, message_id=message.pk),
        lambda: services.read_mark(user=carol, conversation_id=cid, seq=1),
        lambda: services.notification_set(conversation_id=cid, user=carol, muted=True),
        lambda: selectors.conversation_detail(conversation_id=cid, user=carol),
        lambda: selectors.messages_page(conversation_id=cid, user=carol),
        lambda: selectors.member_last_seq(conversation_id=cid, user_id=carol.pk),
        lambda: services.message_send(
            conversation_id=uuid.uuid4(), user=alice, content="x"
        ),
        lambda: services.message_delete(message_id=10**9, user=alice),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert not selectors.is_member(conversation_id=cid, user_id=carol.pk)
