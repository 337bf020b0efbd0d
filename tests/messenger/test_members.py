"""Messenger members and conversations: owners, leaving, removal pushes, activity."""

from __future__ import annotations

import pytest

from realtime.errors import Conflict, Invalid, NotFound, PermissionDenied
from sessions_app.messenger import selectors, services
from sessions_app.messenger.models import Conversation, ConversationMember

pytestmark = pytest.mark.django_db


def test_only_the_owner_renames_and_everyone_hears(group, alice, bob, pushed):
    with pytest.raises(PermissionDenied):
        services.conversation_update(conversation_id=group.pk, user=bob, title="B")
    renamed = services.conversation_update(
        conversation_id=group.pk, user=alice, title="  New   name "
    )
    assert renamed.title == "New name"
    sent = pushed.of("conversation.updated")
    assert sorted(g for g, _, _ in sent) == sorted(
        [f"inbox.{alice.pk}", f"inbox.{bob.pk}"]
    )
    assert sent[0][1]["title"] == "New name"


def test_a_direct_conversation_is_fixed(alice, bob):
    direct, _ = services.conversation_create(user=alice, member_ids=[bob.pk])
    cid = direct.pk
    for call in (
        lambda: services.conversation_update(
            conversation_id=cid, user=alice, title="x"
        ),
        lambda: services.conversation_delete(conversation_id=cid, user=alice),
        lambda: services.member_add(conversation_id=cid, user=alice, user_id=bob.pk),
        lambda: services.member_remove(
            conversation_id=cid, user=alice, user_id=alice.pk
        ),
    ):
        with pytest.raises(Conflict):
            call()


def test_the_owner_deletes_and_every_member_is_told(group, alice, bob, pushed):
    with pytest.raises(PermissionDenied):
        services.conversation_delete(conversation_id=group.pk, user=bob)
    services.conversation_delete(conversation_id=group.pk, user=alice)
    assert not Conversation.objects.filter(pk=group.pk).exists()
    told = pushed.of("conversation.deleted")
    assert {g for g, _, _ in told} == {f"inbox.{alice.pk}", f"inbox.{bob.pk}"}
    assert told[0][1] == {"conversation_id": str(group.pk)}


def test_created_is_pushed_to_every_member(alice, bob, carol, pushed):
    conversation, _ = services.conversation_create(
        user=alice, member_ids=[bob.pk, carol.pk]
    )
    sent = pushed.of("conversation.created")
    assert len(sent) == 3 and sent[0][1]["conversation_id"] == str(conversation.pk)
    assert sent[0][1]["kind"] == "group"


def test_owner_adds_a_member_who_starts_with_nothing_unread(
    group, alice, bob, carol, pushed
):
    services.message_send(conversation_id=group.pk, user=alice, content="before")
    with pytest.raises(PermissionDenied):
        services.member_add(conversation_id=group.pk, user=bob, user_id=carol.pk)
    with pytest.raises(Invalid) as caught:
        services.member_add(conversation_id=group.pk, user=alice, user_id=999999)
    assert caught.value.field == "user_id"
    member, added = services.member_add(
        conversation_id=group.pk, user=alice, user_id=carol.pk
    )
    again, added_again = services.member_add(
        conversation_id=group.pk, user=alice, user_id=str(carol.pk)
    )
    assert added and not added_again and again.pk == member.pk
    entry = selectors.conversation_detail(conversation_id=group.pk, user=carol)
    assert entry.unread == 0 and entry.last_message.content == "before"
    sent = pushed.of("member.added")
    assert len(sent) == 3
    assert sent[0][1] == {"conversation_id": str(group.pk), "user_id": carol.pk}


def test_removal_pushes_member_removed_to_the_removed_user_first(
    group, alice, bob, carol, pushed
):
    services.member_add(conversation_id=group.pk, user=alice, user_id=carol.pk)
    with pytest.raises(PermissionDenied):
        services.member_remove(conversation_id=group.pk, user=bob, user_id=carol.pk)
    services.member_remove(conversation_id=group.pk, user=alice, user_id=carol.pk)
    removed = pushed.of("member.removed")
    assert removed[0][0] == f"inbox.{carol.pk}"
    assert removed[0][1] == {"conversation_id": str(group.pk), "user_id": carol.pk}
    assert {g for g, _, _ in removed} == {
        f"inbox.{alice.pk}",
        f"inbox.{bob.pk}",
        f"inbox.{carol.pk}",
    }
    # No row, no access.
    with pytest.raises(NotFound):
        services.message_send(conversation_id=group.pk, user=carol, content="hi")
    with pytest.raises(NotFound):
        services.member_remove(conversation_id=group.pk, user=alice, user_id=carol.pk)


def test_a_member_leaves_and_the_owner_hands_over(group, alice, bob, carol):
    services.member_add(conversation_id=group.pk, user=alice, user_id=carol.pk)
    services.member_remove(conversation_id=group.pk, user=bob, user_id=bob.pk)
    assert selectors.member_ids(conversation_id=group.pk) == {alice.pk, carol.pk}
    services.member_remove(conversation_id=group.pk, user=alice, user_id=alice.pk)
    assert ConversationMember.objects.get(conversation=group, user=carol).is_owner
    services.member_remove(conversation_id=group.pk, user=carol, user_id=carol.pk)
    assert not Conversation.objects.filter(pk=group.pk).exists()


def test_a_send_is_one_activity_event_and_a_read_the_readers_exact_count(
    group, alice, bob, carol, pushed
):
    """A message to a group of any size is one activity event (each socket counts
    its user's unread itself); a read tells the reader's devices the exact count."""
    services.member_add(conversation_id=group.pk, user=alice, user_id=carol.pk)
    first, _ = services.message_send(conversation_id=group.pk, user=alice, content="a")
    services.read_mark(user=carol, message_id=first.pk)
    message, _ = services.message_send(
        conversation_id=group.pk, user=alice, content="b"
    )
    new = pushed.of("message.new")
    assert new[-1] == (
        f"conversation.{group.pk}",
        {
            "conversation_id": str(group.pk),
            "seq": 2,
            "message_id": message.pk,
            "sender_id": alice.pk,
            "content": "b",
            "created_at": new[-1][1]["created_at"],
        },
        2,
    )
    activity = pushed.of("messenger.activity")
    assert [(g, p["seq"], p["sender_id"]) for g, p, _ in activity] == [
        (f"activity.{group.pk}", 1, alice.pk),
        (f"activity.{group.pk}", 2, alice.pk),
    ]
    # A read tells the reader's own devices their new count, nobody else's.
    services.read_mark(user=bob, message_id=message.pk)
    (last,) = pushed.of("messenger.unread")[-1:]
    assert last[0] == f"inbox.{bob.pk}"
    assert {k: last[1][k] for k in ("conversation_id", "seq", "unread")} == {
        "conversation_id": str(group.pk),
        "seq": 2,
        "unread": 0,
    }
    readers = {g for g, _, _ in pushed.of("messenger.unread")}
    assert readers == {f"inbox.{bob.pk}", f"inbox.{carol.pk}"}  # nobody else's


def test_nothing_is_pushed_for_a_rolled_back_write(group, alice, pushed):
    from django.db import transaction

    try:
        with transaction.atomic():
            services.message_send(conversation_id=group.pk, user=alice, content="x")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert pushed.of("message.new") == []


def test_sharing_and_membership_helpers(group, alice, bob, carol):
    services.conversation_create(user=carol, member_ids=[alice.pk])
    assert selectors.users_sharing(user_id=alice.pk) == {bob.pk, carol.pk}
    assert selectors.users_sharing(user_id=bob.pk) == {alice.pk}
    assert selectors.is_member(conversation_id=str(group.pk), user_id=bob.pk)
    assert selectors.member_last_seq(conversation_id=group.pk, user_id=bob.pk) == 0


def test_conversation_list_has_unread_and_last_message_in_few_queries(
    alice, bob, carol, django_assert_max_num_queries
):
    convs = []
    for other in (bob, carol):
        conversation, _ = services.conversation_create(
            user=alice, member_ids=[other.pk]
        )
        services.message_send(conversation_id=conversation.pk, user=other, content="m")
        convs.append(conversation)
    newest, _ = services.conversation_create(
        user=alice, member_ids=[bob.pk, carol.pk], title="G"
    )
    with django_assert_max_num_queries(3):
        entries = selectors.conversation_list(user=alice)
    # Most recently active first: a new conversation by its creation time.
    assert [e.conversation.pk for e in entries] == [newest.pk, convs[1].pk, convs[0].pk]
    assert [e.unread for e in entries] == [0, 1, 1]
    assert entries[1].last_message.content == "m" and entries[0].last_message is None
    assert entries[1].member_ids == sorted([alice.pk, carol.pk])


def test_replay_comes_in_batches(group, alice):
    for i in range(5):
        services.message_send(conversation_id=group.pk, user=alice, content=str(i))
    batches = list(
        selectors.messages_replay(conversation_id=group.pk, after=1, upto=4, batch=2)
    )
    assert [[m.seq for m in batch] for batch in batches] == [[2, 3], [4]]
    assert (
        list(selectors.messages_replay(conversation_id=group.pk, after=5, upto=5)) == []
    )
