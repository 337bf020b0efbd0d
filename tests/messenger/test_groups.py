"""Group names of the messenger: ASCII, built from UUIDs only."""

from __future__ import annotations

import uuid

import pytest

from sessions_app.messenger.groups import conversation_group


def test_a_conversation_group_is_named_by_its_uuid():
    ident = uuid.uuid4()
    assert conversation_group(ident) == f"conversation.{ident}"
    assert conversation_group(str(ident)) == f"conversation.{ident}"


@pytest.mark.parametrize(
    "bad", [None, 5, "x", "conversation.1", str(uuid.uuid4()).upper()]
)
def test_anything_else_is_refused(bad):
    with pytest.raises(ValueError):
        conversation_group(bad)
