"""Search finds only what the caller may read, by current text, never the deleted."""

from __future__ import annotations

import pytest

from realtime.errors import Invalid
from sessions_app.messenger import services
from sessions_app.messenger.search import fts5_query, message_search
from tests.e2e.server import run_on_fresh_postgres


def found(user, q):
    return [m.content for m in message_search(user=user, q=q)]


@pytest.mark.django_db
def test_search_finds_only_readable_current_text(group, alice, bob, carol):
    other, _ = services.conversation_create(user=carol, member_ids=[bob.pk])
    send = services.message_send
    send(conversation_id=group.pk, user=alice, content="Lunch at noon?")
    send(conversation_id=other.pk, user=carol, content="lunch is secret")
    gone, _ = send(conversation_id=group.pk, user=bob, content="lunch or not")
    typo, _ = send(conversation_id=group.pk, user=bob, content="dinnr soon")
    services.message_delete(message_id=gone.pk, user=bob)
    services.message_edit(message_id=typo.pk, user=bob, content="dinner soon")
    assert found(alice, "LUNCH") == ["Lunch at noon?"]
    assert found(bob, "lunch") == ["lunch is secret", "Lunch at noon?"]
    assert found(carol, "noon") == []
    assert found(alice, "dinner") == ["dinner soon"]
    assert found(alice, "dinnr") == []
    assert found(alice, "lunch noon") == ["Lunch at noon?"]
    assert found(alice, "lunch dinner") == []
    assert found(alice, '"*') == []  # nothing but FTS syntax: no words


def test_fts5_query_quotes_every_word():
    assert fts5_query('a "b" OR c*') == '"a" "b" "OR" "c"'


@pytest.mark.django_db
@pytest.mark.parametrize("q", ["", "  ", None, "x" * 201])
def test_a_blank_or_long_query_is_invalid(alice, q):
    with pytest.raises(Invalid) as caught:
        message_search(user=alice, q=q)
    assert caught.value.field == "q"


SCRIPT = """
import json
from django.contrib.auth import get_user_model
from sessions_app.messenger import services
from sessions_app.messenger.search import message_search

User = get_user_model()
alice, bob, carol = (User.objects.create_user(n) for n in ("alice", "bob", "carol"))
group, _ = services.conversation_create(user=alice, member_ids=[bob.pk], title="T")
other, _ = services.conversation_create(user=carol, member_ids=[bob.pk])
send = services.message_send
send(conversation_id=group.pk, user=alice, content="Lunch at noon?")
send(conversation_id=other.pk, user=carol, content="lunch is secret")
gone, _ = send(conversation_id=group.pk, user=bob, content="lunch or not")
typo, _ = send(conversation_id=group.pk, user=bob, content="dinnr soon")
services.message_delete(message_id=gone.pk, user=bob)
services.message_edit(message_id=typo.pk, user=bob, content="dinner soon")
def found(user, q):
    return [m.content for m in message_search(user=user, q=q)]
second, _ = send(conversation_id=group.pk, user=alice, content="two")
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute(
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'conversation_message_fts'"
    )
    index = cursor.fetchone()[0]
print(json.dumps({
    "alice": found(alice, "LUNCH"),
    "bob": found(bob, "lunch"),
    "carol": found(carol, "noon"),
    "edited": [found(alice, "dinner"), found(alice, "dinnr")],
    "both": [found(alice, "lunch noon"), found(alice, "lunch dinner")],
    "seqs": [typo.seq, second.seq],
    "index": index,
}))
"""


def test_search_and_seqs_on_postgres(tmp_path):
    out = run_on_fresh_postgres(tmp_path, SCRIPT)
    assert out == {
        "alice": ["Lunch at noon?"],
        "bob": ["lunch is secret", "Lunch at noon?"],
        "carol": [],
        "edited": [["dinner soon"], []],
        "both": [["Lunch at noon?"], []],
        "seqs": [3, 4],
        "index": 1,
    }
