"""Payload models of ``/ws/messenger/``: what clients send, and what the server sends.

Shapes only: the services check the rest (a UUID, blank content, membership), so
the socket and REST refuse the same things with the same words.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from realtime.protocol import MAX_SAFE_INTEGER, StrictModel
from sessions_app.messenger.models import MAX_CLIENT_ID, MAX_EMOJI

ConversationId = Annotated[str, StringConstraints(max_length=64)]
MessageId = Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)]
Seq = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]


class ConversationRef(StrictModel):
    conversation_id: ConversationId


class Subscribe(ConversationRef):
    since: Seq | None = None


class Send(ConversationRef):
    content: Annotated[str, StringConstraints(max_length=100_000)]
    client_id: Annotated[str, StringConstraints(max_length=MAX_CLIENT_ID)] | None = None
    reply_to: MessageId | None = None


class MessageRef(StrictModel):
    message_id: MessageId


class Edit(MessageRef):
    content: Annotated[str, StringConstraints(max_length=100_000)]


class React(MessageRef):
    emoji: Annotated[str, StringConstraints(min_length=1, max_length=MAX_EMOJI)]


class Typing(ConversationRef):
    is_typing: bool


# ------------------------------------------------------------------ server → client
# Shapes only, for the AsyncAPI document: the frames are built in
# sessions_app.messenger.frames, presence and the consumer; a test holds them together.
class MessengerConnected(StrictModel):
    """``system.connected``: the contacts online now."""

    user_id: int
    online: list[int]


class ConversationState(StrictModel):
    """``conversation.subscribed`` / ``conversation.synced``."""

    conversation_id: str
    last_seq: int


class ConversationOnly(StrictModel):
    """``conversation.unsubscribed`` / ``conversation.deleted``."""

    conversation_id: str


class MessengerMessage(StrictModel):
    """``message.new``; a deleted message is a tombstone (``content`` empty)."""

    conversation_id: str
    seq: int
    message_id: int
    sender_id: int | None
    content: str
    created_at: str
    client_id: str | None = None
    reply_to: int | None = None
    edited_at: str | None = None
    deleted_at: str | None = None


class MessengerEdited(StrictModel):
    """``message.edited``."""

    conversation_id: str
    message_id: int
    seq: int
    content: str
    edited_at: str | None


class MessengerDeleted(StrictModel):
    """``message.deleted``: the message keeps its seq."""

    conversation_id: str
    message_id: int
    seq: int
    deleted_at: str | None


class MessengerRead(StrictModel):
    """``message.read``: a receipt, to the conversation's subscribers."""

    conversation_id: str
    message_id: int
    user_id: int
    read_at: str | None


class MessengerReactions(StrictModel):
    """``message.reactions``: every emoji's count on the message."""

    conversation_id: str
    message_id: int
    reactions: dict[str, int]


class MessengerTyping(StrictModel):
    """``typing`` to the other subscribers."""

    conversation_id: str
    user_id: int
    is_typing: bool


class ConversationActivity(StrictModel):
    """``conversation.activity``: something new where this device is not subscribed."""

    conversation_id: str
    seq: int
    unread: int
    notify: bool


class ConversationInfo(StrictModel):
    """``conversation.created`` / ``conversation.updated``."""

    conversation_id: str
    kind: str
    title: str
    last_seq: int


class MemberChange(StrictModel):
    """``member.added`` / ``member.removed``."""

    conversation_id: str
    user_id: int


class UserOnline(StrictModel):
    """``user.online``: a contact's first device came on."""

    user_id: int


class UserOffline(UserOnline):
    """``user.offline``: a contact's last device went off."""

    last_seen: str


# What the socket sends, by type: the AsyncAPI document's server → client messages.
MESSENGER_SENDS: dict[str, type[StrictModel]] = {
    "system.connected": MessengerConnected,
    "conversation.subscribed": ConversationState,
    "conversation.synced": ConversationState,
    "conversation.unsubscribed": ConversationOnly,
    "message.new": MessengerMessage,
    "message.edited": MessengerEdited,
    "message.deleted": MessengerDeleted,
    "message.read": MessengerRead,
    "message.reactions": MessengerReactions,
    "typing": MessengerTyping,
    "conversation.activity": ConversationActivity,
    "conversation.created": ConversationInfo,
    "conversation.updated": ConversationInfo,
    "conversation.deleted": ConversationOnly,
    "member.added": MemberChange,
    "member.removed": MemberChange,
    "user.online": UserOnline,
    "user.offline": UserOffline,
}
