"""A send's own SQL (messenger.message_sql), alone and in batches, on both databases."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import IntegrityError, connection

from realtime.errors import Invalid, NotFound
from sessions_app.messenger import messaging, services
from sessions_app.messenger.message_sql import current_sql, send_sql
from sessions_app.messenger.models import Conversation, ConversationMessage
from tests.e2e.server import run_on_fresh_postgres


def blind_sql():
    """The statements with a duplicate check that sees nothing, as if the other
    process's row had not been committed yet; the insert then meets the constraint."""
    real = current_sql()
    return dataclasses.replace(
        real,
        bump_new=real.bump_new.replace(
            " AND NOT EXISTS (", " OR 0 = 1 AND NOT EXISTS ("
        ),
    )


def last_seq(conversation) -> int:
    return Conversation.objects.get(pk=conversation.pk).last_seq


@pytest.mark.django_db
def test_client_id_race_between_processes_returns_the_original(
    group, alice, monkeypatch
):
    original, _ = services.message_send(
        conversation_id=group.pk, user=alice, content="first", client_id="c9"
    )
    monkeypatch.setattr(messaging, "current_sql", blind_sql)
    again, created = services.message_send(
        conversation_id=group.pk, user=alice, content="second", client_id="c9"
    )
    assert not created and again.pk == original.pk and again.content == "first"
    assert last_seq(group) == 1
    real_filter = ConversationMessage.objects.filter
    monkeypatch.setattr(
        ConversationMessage.objects, "filter", lambda *a, **k: real_filter(pk=0)
    )
    with pytest.raises(IntegrityError):  # no original to be found: a real conflict
        services.message_send(
            conversation_id=group.pk, user=alice, content="third", client_id="c9"
        )


@pytest.mark.django_db
def test_a_race_in_a_batch_sends_each_alone(group, alice, bob, monkeypatch):
    original, _ = services.message_send(
        conversation_id=group.pk, user=alice, content="first", client_id="c9"
    )
    monkeypatch.setattr(messaging, "current_sql", blind_sql)
    results = messaging.messages_send(
        sends=[
            {"conversation_id": group.pk, "user": bob, "content": "hi"},
            {
                "conversation_id": group.pk,
                "user": alice,
                "content": "x",
                "client_id": "c9",
            },
            {"conversation_id": group.pk, "user": alice, "content": "   "},
        ]
    )
    stored, retried, blank = results
    assert stored[1] and stored[0].seq == 2 and stored[0].content == "hi"
    assert retried == (original, False) and retried[0].content == "first"
    assert isinstance(blank, Invalid) and blank.field == "content"
    assert last_seq(group) == 2
    assert ConversationMessage.objects.filter(conversation=group).count() == 2


@pytest.mark.django_db
def test_a_removed_member_is_refused_without_taking_a_seq(group, alice, bob):
    services.message_send(conversation_id=group.pk, user=bob, content="hi")
    services.member_remove(conversation_id=group.pk, user=alice, user_id=bob.pk)
    for client_id in (None, "c1"):
        with pytest.raises(NotFound):
            services.message_send(
                conversation_id=group.pk, user=bob, content="x", client_id=client_id
            )
    with pytest.raises(NotFound):  # not even a reply tells what the group holds
        services.message_send(
            conversation_id=group.pk, user=bob, content="x", reply_to=99999
        )
    assert last_seq(group) == 1
    assert (
        services.message_send(conversation_id=group.pk, user=alice, content="y")[0].seq
        == 2
    )


@pytest.mark.django_db
def test_a_batch_is_gapless_and_refusals_write_nothing(group, alice, bob, carol):
    first, _ = services.message_send(conversation_id=group.pk, user=alice, content="a")
    sends = [
        {"conversation_id": group.pk, "user": bob, "content": "b", "client_id": "k"},
        {"conversation_id": group.pk, "user": carol, "content": "not a member"},
        {"conversation_id": group.pk, "user": alice, "content": "c", "reply_to": 99999},
        {"conversation_id": "nope", "user": alice, "content": "d"},
        {
            "conversation_id": group.pk,
            "user": bob,
            "content": "again",
            "client_id": "k",
        },
        {
            "conversation_id": str(group.pk),
            "user": alice,
            "content": "e",
            "reply_to": first.pk,
        },
    ]
    b, stranger, bad_reply, bad_id, again, e = messaging.messages_send(sends=sends)
    assert isinstance(stranger, NotFound)
    assert isinstance(bad_reply, Invalid) and bad_reply.field == "reply_to"
    assert isinstance(bad_id, Invalid) and bad_id.field == "conversation_id"
    assert again == (b[0], False) and b[1]
    assert [b[0].seq, e[0].seq] == [2, 3] and e[0].reply_to_id == first.pk
    assert last_seq(group) == 3
    stored = ConversationMessage.objects.filter(conversation=group).order_by("seq")
    assert [(m.seq, m.content) for m in stored] == [(1, "a"), (2, "b"), (3, "e")]


SCRIPT = """
import dataclasses, json
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from realtime.errors import Invalid, NotFound
from sessions_app.messenger import messaging, services
from sessions_app.messenger.message_sql import current_sql, send_sql
from sessions_app.messenger.models import Conversation, ConversationMessage

User = get_user_model()
alice, bob, carol = (User.objects.create_user(n) for n in ("alice", "bob", "carol"))
group, _ = services.conversation_create(user=alice, member_ids=[bob.pk], title="T")
send = services.message_send
first, created = send(conversation_id=group.pk, user=alice, content="a", client_id="c")
again, again_created = send(
    conversation_id=str(group.pk), user=alice, content="a?", client_id="c"
)
def refused(**kwargs):
    try:
        send(conversation_id=group.pk, content="x", **kwargs)
    except (NotFound, Invalid) as exc:
        return type(exc).__name__
batch = messaging.messages_send(sends=[
    {"conversation_id": group.pk, "user": bob, "content": "b"},
    {"conversation_id": group.pk, "user": carol, "content": "no"},
    {"conversation_id": group.pk, "user": bob, "content": "r", "reply_to": 99999},
    {"conversation_id": group.pk, "user": bob, "content": "c", "reply_to": first.pk},
])
real = current_sql()
unseen = real.bump_new.replace(" AND NOT EXISTS (", " OR 0 = 1 AND NOT EXISTS (")
blind = dataclasses.replace(real, bump_new=unseen)
messaging.current_sql = lambda: blind
raced, raced_created = send(
    conversation_id=group.pk, user=alice, content="z", client_id="c"
)
in_batch = messaging.messages_send(sends=[
    {"conversation_id": group.pk, "user": bob, "content": "d"},
    {"conversation_id": group.pk, "user": alice, "content": "z", "client_id": "c"},
])
messaging.current_sql = current_sql
stored = ConversationMessage.objects.get(pk=first.pk)
rows = ConversationMessage.objects.filter(conversation=group)
print(json.dumps({
    "first": [first.seq, created, first.created_at == stored.created_at],
    "again": [again.pk == first.pk, again_created],
    "refused": [
        refused(user=carol),
        refused(user=carol, client_id="c"),
        refused(user=alice, reply_to=99999),
    ],
    "batch": [
        batch[0][0].seq,
        type(batch[1]).__name__,
        type(batch[2]).__name__,
        [batch[3][0].seq, batch[3][0].reply_to_id == first.pk],
    ],
    "raced": [raced.pk == first.pk, raced_created],
    "in_batch": [in_batch[0][0].seq, in_batch[1][0].pk == first.pk, in_batch[1][1]],
    "seqs": list(rows.order_by("seq").values_list("seq", flat=True)),
    "last_seq": Conversation.objects.get(pk=group.pk).last_seq,
}))
"""


def test_send_sql_on_postgres(tmp_path):
    out = run_on_fresh_postgres(tmp_path, SCRIPT)
    assert out == {
        "first": [1, True, True],
        "again": [True, False],
        "refused": ["NotFound", "NotFound", "Invalid"],
        "batch": [2, "NotFound", "Invalid", [3, True]],
        "raced": [True, False],
        "in_batch": [4, True, False],
        "seqs": [1, 2, 3, 4],
        "last_seq": 4,
    }


@pytest.mark.django_db
def test_without_returning_the_seq_and_id_are_read_back(group, alice, monkeypatch):
    """SQLite before 3.35 (which Django still takes) has no RETURNING."""
    monkeypatch.setattr(
        messaging, "current_sql", lambda: send_sql(connection.vendor, False)
    )
    first, _ = services.message_send(conversation_id=group.pk, user=alice, content="a")
    second, _ = services.message_send(
        conversation_id=group.pk, user=alice, content="b", client_id="c"
    )
    again, created = services.message_send(
        conversation_id=group.pk, user=alice, content="b?", client_id="c"
    )
    assert [first.seq, second.seq, last_seq(group)] == [1, 2, 2]
    assert ConversationMessage.objects.get(pk=second.pk).content == "b"
    assert again.pk == second.pk and not created
