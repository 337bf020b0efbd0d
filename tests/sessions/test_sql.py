"""sessions_app.sql.insert_params: the values a hand-written insert writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.utils import timezone

from sessions_app.message_sql import message_sql
from sessions_app.messenger.message_sql import current_sql
from sessions_app.messenger.models import ConversationMessage
from sessions_app.models import Message
from sessions_app.sql import insert_params

MOMENT = datetime(2026, 12, 4, 10, 30, 0, 123456, tzinfo=UTC)


def inserts():
    """Each hand-written insert: its model and the fields it writes."""
    return [
        (Message, message_sql(connection.vendor).insert.fields),
        (ConversationMessage, current_sql().insert.fields),
    ]


def as_save_prepares(instance, fields) -> list:
    return [
        field.get_db_prep_save(field.pre_save(instance, True), connection)
        for field in fields
    ]


@pytest.mark.parametrize("which", [0, 1], ids=["message", "conversation message"])
def test_a_none_is_what_each_field_prepares_it_to(which):
    _, fields = inserts()[which]
    nullable = [field for field in fields if field.null]
    assert nullable  # the shortcut has fields to act on
    for field in nullable:
        assert field.get_db_prep_save(None, connection) is None, field.name


def test_the_values_are_those_save_would_write(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: MOMENT)  # auto_now_add's moment
    for edited in (None, MOMENT):
        chat = Message(
            session_id=3, seq=9, participant_id=4, content="hi", edited_at=edited
        )
        sent = ConversationMessage(
            conversation_id=uuid.uuid4(),
            seq=2,
            sender_id=5,
            content="hello",
            client_id="c1",
            edited_at=edited,
        )
        for instance, (_, fields) in zip((chat, sent), inserts(), strict=True):
            ours = insert_params(instance, fields, connection)
            assert ours == as_save_prepares(instance, fields)
            assert None in ours  # NULLs kept, the rest prepared as save() does
