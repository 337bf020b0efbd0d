"""What the sockets of a session are told after a write has been committed.

Each function serialises its frame once and hands it to ``realtime.broadcast``; the
socket consumer awaits them, REST views and admin actions call the ``*_sync`` form.
"""

from __future__ import annotations

from datetime import datetime

from asgiref.sync import async_to_sync
from django.utils import timezone

from realtime.broadcast import broadcast, close_group
from realtime.groups import session_group, session_hosts_group
from realtime.protocol import CloseCode, encode_frame, utc_timestamp
from sessions_app.frames import (
    hidden_payload,
    message_frame,
    question_update_payload,
    session_payload,
)
from sessions_app.models import Message, Session


async def message_stored(message: Message) -> None:
    """A new message to everyone (with its seq), or a pending question to hosts."""
    type_, payload = message_frame(message)
    text = encode_frame(type_, payload)
    if message.seq is None:
        await broadcast(session_hosts_group(message.session_id), text)
    else:
        await broadcast(session_group(message.session_id), text, seq=message.seq)


async def question_updated(message: Message) -> None:
    text = encode_frame("question.updated", question_update_payload(message))
    await broadcast(session_group(message.session_id), text)


async def message_hidden(message: Message) -> None:
    """Everyone learns a message was hidden; a rejected pending question, hosts only."""
    text = encode_frame("message.hidden", hidden_payload(message))
    if message.seq is None:
        await broadcast(session_hosts_group(message.session_id), text)
    else:
        await broadcast(session_group(message.session_id), text)


async def session_updated(session: Session) -> None:
    text = encode_frame("session.updated", session_payload(session))
    await broadcast(session_group(session.pk), text)


async def session_closed(
    *, session_id: int, code: str, closed_at: datetime | None = None
) -> None:
    """``session.closed`` to every socket of the session, then close them all 4010.

    Takes plain values: a deleted session's row is gone by the time it is called.
    """
    group = session_group(session_id)
    payload = {"code": code, "closed_at": utc_timestamp(closed_at or timezone.now())}
    await broadcast(group, encode_frame("session.closed", payload))
    await close_group(group, CloseCode.SESSION_CLOSED)


def session_updated_sync(session: Session) -> None:
    async_to_sync(session_updated)(session)


def session_closed_sync(
    *, session_id: int, code: str, closed_at: datetime | None = None
) -> None:
    async_to_sync(session_closed)(session_id=session_id, code=code, closed_at=closed_at)


def message_hidden_sync(message: Message) -> None:
    async_to_sync(message_hidden)(message)
