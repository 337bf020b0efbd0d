"""Wire payloads of the live-session endpoint, built from stored rows.

The same function builds a message's frame for the live broadcast, the replay after
``?since=``, a gap filled from the database and the REST history, so a client sees
one shape whichever way a message reaches it (docs/sessions.md).
"""

from __future__ import annotations

from typing import Any

from sessions_app.models import Message, Participant, Session

CHAT_MESSAGE = "chat.message"
QUESTION_ASKED = "question.asked"
QUESTION_PENDING = "question.pending"


def session_payload(session: Session) -> dict[str, Any]:
    return {
        "code": session.code,
        "title": session.title,
        "status": session.status,
        "moderated": session.moderated,
    }


def participant_payload(participant: Participant) -> dict[str, Any]:
    return {
        "participant_id": participant.pk,
        "nickname": participant.nickname,
        "role": participant.role,
    }


def message_payload(message: Message) -> dict[str, Any]:
    """``chat.message`` / ``question.*`` payload; a hidden message is a tombstone."""
    payload: dict[str, Any] = {
        "seq": message.seq,
        "message_id": message.pk,
        "participant_id": message.participant_id,
        "nickname": message.nickname,
        "content": message.content,
        "created_at": message.created_at,
    }
    if message.client_id is not None:
        payload["client_id"] = message.client_id
    if message.kind == Message.Kind.QUESTION:
        payload["upvotes"] = message.upvotes
        payload["answered"] = message.answered
    if message.hidden:
        payload["content"] = ""
        payload["hidden"] = True
    return payload


def message_frame(message: Message) -> tuple[str, dict[str, Any]]:
    """``(type, payload)`` of a stored message as every participant sees it."""
    if message.kind == Message.Kind.QUESTION:
        kind = QUESTION_ASKED if message.seq is not None else QUESTION_PENDING
        return kind, message_payload(message)
    return CHAT_MESSAGE, message_payload(message)


def question_update_payload(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.pk,
        "upvotes": message.upvotes,
        "answered": message.answered,
    }


def hidden_payload(message: Message) -> dict[str, Any]:
    return {"message_id": message.pk, "seq": message.seq}
