"""The checks every messenger service starts with: ids parsed, membership proven.

A conversation the caller is not in is ``NotFound``, exactly as one that does not
exist, so that nobody learns which conversations exist.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

from realtime.errors import Invalid, NotFound
from sessions_app.messenger.conf import knob
from sessions_app.messenger.models import (
    MAX_CLIENT_ID,
    MAX_EMOJI,
    MAX_TITLE,
    ConversationMember,
    ConversationMessage,
)

NO_CONVERSATION = "no such conversation"
NO_MESSAGE = "no such message"


def conversation_uuid(raw: Any) -> uuid.UUID:
    """``raw`` as a UUID, or ``Invalid(field="conversation_id")``."""
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(str(raw)) if isinstance(raw, str) else _bad_uuid()
    except ValueError:
        return _bad_uuid()


def _bad_uuid() -> uuid.UUID:
    raise Invalid("must be a UUID", field="conversation_id")


def positive_int(raw: Any, field: str) -> int:
    """A database id or seq: a positive integer (``"12"`` from a URL too)."""
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1 or raw > 2**63 - 1:
        raise Invalid("must be a positive integer", field=field)
    return raw


def membership(
    *, conversation_id: Any, user: Any, lock: bool = False
) -> ConversationMember:
    """The caller's member row (with its conversation), or ``NotFound``."""
    rows = ConversationMember.objects.select_related("conversation")
    if lock:
        rows = rows.select_for_update(of=("self",))
    member = rows.filter(
        conversation_id=conversation_uuid(conversation_id), user_id=user.pk
    ).first()
    if member is None:
        raise NotFound(NO_CONVERSATION)
    return member


def message_for_member(
    *, message_id: Any, user: Any, conversation_id: Any = None
) -> tuple[ConversationMessage, ConversationMember]:
    """The message and the caller's membership of its conversation, or ``NotFound``
    (also when ``conversation_id`` is given and the message is not in it)."""
    rows = ConversationMessage.objects.filter(pk=positive_int(message_id, "message_id"))
    if conversation_id is not None:
        rows = rows.filter(conversation_id=conversation_uuid(conversation_id))
    message = rows.first()
    if message is None:
        raise NotFound(NO_MESSAGE)
    try:
        member = membership(conversation_id=message.conversation_id, user=user)
    except NotFound:
        raise NotFound(NO_MESSAGE) from None
    return message, member


def content_clean(raw: Any) -> str:
    """Message text, kept as typed: a string of 1..``MESSENGER_MAX_CONTENT`` chars
    that is not blank."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("must not be blank", field="content")
    limit = knob("MESSENGER_MAX_CONTENT")
    if len(raw) > limit:
        raise Invalid(f"at most {limit} characters", field="content")
    return raw


def title_clean(raw: Any) -> str:
    """A group title: trimmed, inner whitespace collapsed, at most 200 chars ("" ok)."""
    if not isinstance(raw, str):
        raise Invalid("must be a string", field="title")
    title = " ".join(raw.split())
    if len(title) > MAX_TITLE:
        raise Invalid(f"at most {MAX_TITLE} characters", field="title")
    return title


def client_id_clean(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not 1 <= len(raw) <= MAX_CLIENT_ID:
        raise Invalid(f"must be 1..{MAX_CLIENT_ID} characters", field="client_id")
    return raw


def emoji_clean(raw: Any) -> str:
    """One reaction: 1..32 characters, no spaces or control characters."""
    if (
        not isinstance(raw, str)
        or not 1 <= len(raw) <= MAX_EMOJI
        or any(ch.isspace() or unicodedata.category(ch) in {"Cc", "Cs"} for ch in raw)
    ):
        raise Invalid(f"must be 1..{MAX_EMOJI} characters, no spaces", field="emoji")
    return raw
