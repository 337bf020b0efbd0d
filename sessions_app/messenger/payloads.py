"""Payload models of the client → server messages on ``/ws/messenger/``.

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
