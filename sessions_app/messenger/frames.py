"""Wire payloads of the messenger, built from stored rows (PROTOCOL §6).

One function per frame: the live broadcast, the replay after ``since`` and the REST
history all use them, so a client sees one shape whichever way a message reaches it.
Every value is JSON-ready (ids and times as strings), so REST returns them as they are.
"""

from __future__ import annotations

from typing import Any

from realtime.protocol import utc_timestamp
from sessions_app.messenger.models import (
    Conversation,
    ConversationMember,
    ConversationMessage,
)

MESSAGE_NEW = "message.new"
MESSAGE_EDITED = "message.edited"
MESSAGE_DELETED = "message.deleted"
MESSAGE_READ = "message.read"
MESSAGE_REACTIONS = "message.reactions"
CONVERSATION_ACTIVITY = "conversation.activity"
CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"
CONVERSATION_DELETED = "conversation.deleted"
MEMBER_ADDED = "member.added"
MEMBER_REMOVED = "member.removed"


def _time(value: Any) -> str | None:
    return utc_timestamp(value) if value is not None else None


def message_payload(message: ConversationMessage) -> dict[str, Any]:
    """``message.new``: ``client_id``, ``reply_to``, ``edited_at`` and ``deleted_at``
    only when set (a deleted message is a tombstone with empty content)."""
    payload: dict[str, Any] = {
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "message_id": message.pk,
        "sender_id": message.sender_id,
        "content": "" if message.deleted_at is not None else message.content,
        "created_at": _time(message.created_at),
    }
    if message.client_id is not None:
        payload["client_id"] = message.client_id
    if message.reply_to_id is not None:
        payload["reply_to"] = message.reply_to_id
    if message.edited_at is not None:
        payload["edited_at"] = _time(message.edited_at)
    if message.deleted_at is not None:
        payload["deleted_at"] = _time(message.deleted_at)
    return payload


def edited_payload(message: ConversationMessage) -> dict[str, Any]:
    return {
        "conversation_id": str(message.conversation_id),
        "message_id": message.pk,
        "seq": message.seq,
        "content": message.content,
        "edited_at": _time(message.edited_at),
    }


def deleted_payload(message: ConversationMessage) -> dict[str, Any]:
    return {
        "conversation_id": str(message.conversation_id),
        "message_id": message.pk,
        "seq": message.seq,
        "deleted_at": _time(message.deleted_at),
    }


def read_payload(member: ConversationMember, message_id: int) -> dict[str, Any]:
    return {
        "conversation_id": str(member.conversation_id),
        "message_id": message_id,
        "user_id": member.user_id,
        "read_at": _time(member.last_read_at),
    }


def reactions_payload(
    message: ConversationMessage, counts: dict[str, int]
) -> dict[str, Any]:
    return {
        "conversation_id": str(message.conversation_id),
        "message_id": message.pk,
        "reactions": counts,
    }


def activity_payload(conversation_id: Any, seq: int, unread: int) -> dict[str, Any]:
    return {"conversation_id": str(conversation_id), "seq": seq, "unread": unread}


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    """``conversation.created`` / ``conversation.updated``."""
    return {
        "conversation_id": str(conversation.pk),
        "kind": conversation.kind,
        "title": conversation.title,
        "last_seq": conversation.last_seq,
    }


def member_payload(conversation_id: Any, user_id: int) -> dict[str, Any]:
    """``member.added`` / ``member.removed``."""
    return {"conversation_id": str(conversation_id), "user_id": user_id}
