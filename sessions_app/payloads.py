"""Payload models of ``/ws/sessions/<code>/``: what clients send, and what
``sessions_app.frames`` and the consumer send (the AsyncAPI document shows both)."""

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


# ------------------------------------------------------------------ server → client
# Shapes only, for the AsyncAPI document: the server builds these frames in
# sessions_app.frames, notices and the consumer; a test holds the two together.
class SessionInfo(StrictModel):
    """``session.updated``, and the welcome's ``session``."""

    code: str
    title: str
    status: str
    moderated: bool


class SessionParticipant(StrictModel):
    """``participant.updated``, and a participant in other frames."""

    participant_id: int
    nickname: str
    role: str


class SessionWelcome(StrictModel):
    """``session.welcome``: the first frame; ``online`` is cut in big rooms."""

    session: SessionInfo
    you: SessionParticipant
    online: list[SessionParticipant]
    online_count: int
    last_seq: int


class SessionSynced(StrictModel):
    """``session.synced``: the replay after ``?since=`` is complete."""

    last_seq: int


class SessionChatMessage(StrictModel):
    """``chat.message``; a hidden one is a tombstone (``content`` empty)."""

    seq: int
    message_id: int
    participant_id: int | None
    nickname: str
    content: str
    created_at: str
    client_id: str | None = None
    hidden: bool | None = None


class SessionQuestion(SessionChatMessage):
    """``question.asked``: a chat message with votes."""

    upvotes: int
    answered: bool


class SessionPendingQuestion(SessionQuestion):
    """``question.pending``: a moderated question waiting for the host (no seq)."""

    seq: None  # type: ignore[assignment]


class SessionQuestionUpdated(StrictModel):
    """``question.updated``."""

    message_id: int
    upvotes: int
    answered: bool


class SessionMessageHidden(StrictModel):
    """``message.hidden``; ``seq`` is null for a rejected pending question."""

    message_id: int
    seq: int | None


class SessionTyping(StrictModel):
    """``typing`` to the others."""

    participant_id: int
    nickname: str
    is_typing: bool


class SessionPresenceNotice(SessionParticipant):
    """``participant.joined`` / ``participant.left``."""

    online_count: int | None = None


class SessionPresenceChanges(StrictModel):
    """``participants.changed``: several joins and leaves of a busy room at once."""

    joined: list[SessionParticipant]
    left: list[SessionParticipant]
    online_count: int | None = None


class SessionClosedNotice(StrictModel):
    """``session.closed``: precedes the 4010 close."""

    code: str
    closed_at: str


# What the socket sends, by type: the AsyncAPI document's server → client messages.
SESSION_SENDS: dict[str, type[StrictModel]] = {
    "session.welcome": SessionWelcome,
    "session.synced": SessionSynced,
    "chat.message": SessionChatMessage,
    "question.asked": SessionQuestion,
    "question.pending": SessionPendingQuestion,
    "question.updated": SessionQuestionUpdated,
    "message.hidden": SessionMessageHidden,
    "typing": SessionTyping,
    "participant.updated": SessionParticipant,
    "participant.joined": SessionPresenceNotice,
    "participant.left": SessionPresenceNotice,
    "participants.changed": SessionPresenceChanges,
    "session.updated": SessionInfo,
    "session.closed": SessionClosedNotice,
}
