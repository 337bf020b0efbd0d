"""Payload models of the client → server messages on ``/ws/sessions/<code>/``."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from realtime.protocol import MAX_SAFE_INTEGER, StrictModel
from sessions_app.models import MAX_CONTENT
from sessions_app.services import nickname_clean


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Content = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CONTENT),
    AfterValidator(_not_blank),
]
ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
MessageId = Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)]
Nickname = Annotated[
    str, StringConstraints(max_length=200), AfterValidator(nickname_clean)
]


class ChatSend(StrictModel):
    content: Content
    client_id: ClientId | None = None


class QuestionAsk(ChatSend):
    pass


class MessageRef(StrictModel):
    message_id: MessageId


class QuestionAnswer(MessageRef):
    answered: bool = True


class Typing(StrictModel):
    is_typing: bool


class ParticipantUpdate(StrictModel):
    nickname: Nickname


class Empty(StrictModel):
    pass
