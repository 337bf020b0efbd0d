"""What the messenger's sockets are told once a write has been committed.

Services call these inside their transaction; each schedules its broadcasts with
``transaction.on_commit``, so nothing is pushed for a write that rolled back and a
REST write pushes exactly what the socket's own write would. Every frame is encoded
once per event (never per receiver) and sent through ``realtime.broadcast``:

- message-level frames (``message.*``) to the conversation's group, the sockets
  subscribed to it; ``message.new`` with its seq, for ordered delivery;
- conversation-level frames (``conversation.*``, ``member.*``) to each member's
  ``user.<id>`` group, every device of each member, subscribed or not;
- ``conversation.activity`` to each member's ``user.<id>`` group, one small frame per
  member since each has their own unread count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

from realtime.broadcast import broadcast
from realtime.groups import user_group
from realtime.protocol import encode_frame
from sessions_app.messenger import frames
from sessions_app.messenger.groups import conversation_group
from sessions_app.messenger.models import (
    Conversation,
    ConversationMember,
    ConversationMessage,
)

logger = logging.getLogger("sessions_app.messenger")

Push = tuple[str, str, int | None]  # (group, encoded frame, seq)


def _send(pushes: list[Push]) -> None:
    async def run() -> None:
        for group, text, seq in pushes:
            await broadcast(group, text, seq=seq)

    if pushes:
        async_to_sync(run)()


def _after_commit(build: Callable[[], list[Push]]) -> None:
    """Build the pushes after commit (they may read committed rows) and send them.

    ``robust``: a failed broadcast is logged, never turned into an error for a write
    that is already stored.
    """
    transaction.on_commit(lambda: _send(build()), robust=True)


def _to_users(user_ids: Iterable[int], type_: str, payload: dict) -> list[Push]:
    text = encode_frame(type_, payload)
    return [(user_group(user_id), text, None) for user_id in user_ids]


def _activity(conversation_id: Any, seq: int, only: int | None = None) -> list[Push]:
    """One ``conversation.activity`` per member (or only for user ``only``)."""
    from sessions_app.messenger.selectors import member_unread_counts

    counts = member_unread_counts(conversation_id=conversation_id)
    return [
        (
            user_group(user_id),
            encode_frame(
                frames.CONVERSATION_ACTIVITY,
                frames.activity_payload(conversation_id, seq, unread),
            ),
            None,
        )
        for user_id, unread in counts.items()
        if only is None or user_id == only
    ]


def message_new(message: ConversationMessage) -> None:
    def build() -> list[Push]:
        text = encode_frame(frames.MESSAGE_NEW, frames.message_payload(message))
        group = conversation_group(message.conversation_id)
        return [(group, text, message.seq)] + _activity(
            message.conversation_id, message.seq
        )

    _after_commit(build)


def message_edited(message: ConversationMessage) -> None:
    text = encode_frame(frames.MESSAGE_EDITED, frames.edited_payload(message))
    # No seq: the message keeps its own, and an ordering receiver must not take an
    # edit for a message it already has.
    _after_commit(lambda: [(conversation_group(message.conversation_id), text, None)])


def message_deleted(message: ConversationMessage, last_seq: int) -> None:
    """The tombstone to subscribers; members' unread counts drop by it."""

    def build() -> list[Push]:
        text = encode_frame(frames.MESSAGE_DELETED, frames.deleted_payload(message))
        group = conversation_group(message.conversation_id)
        return [(group, text, None)] + _activity(message.conversation_id, last_seq)

    _after_commit(build)


def message_reactions(message: ConversationMessage, counts: dict[str, int]) -> None:
    text = encode_frame(
        frames.MESSAGE_REACTIONS, frames.reactions_payload(message, counts)
    )
    _after_commit(lambda: [(conversation_group(message.conversation_id), text, None)])


def message_read(member: ConversationMember, message_id: int, last_seq: int) -> None:
    """The receipt to subscribers; the reader's own devices get their new unread."""

    def build() -> list[Push]:
        text = encode_frame(
            frames.MESSAGE_READ, frames.read_payload(member, message_id)
        )
        group = conversation_group(member.conversation_id)
        return [(group, text, None)] + _activity(
            member.conversation_id, last_seq, only=member.user_id
        )

    _after_commit(build)


def conversation_created(conversation: Conversation, user_ids: list[int]) -> None:
    payload = frames.conversation_payload(conversation)
    _after_commit(lambda: _to_users(user_ids, frames.CONVERSATION_CREATED, payload))


def conversation_updated(conversation: Conversation, user_ids: list[int]) -> None:
    payload = frames.conversation_payload(conversation)
    _after_commit(lambda: _to_users(user_ids, frames.CONVERSATION_UPDATED, payload))


def conversation_deleted(conversation_id: Any, user_ids: list[int]) -> None:
    """Every former member's sockets drop it (as on ``member.removed``)."""
    payload = {"conversation_id": str(conversation_id)}
    _after_commit(lambda: _to_users(user_ids, frames.CONVERSATION_DELETED, payload))


def member_added(conversation_id: Any, user_id: int, user_ids: list[int]) -> None:
    """To every member's devices, the new member's included."""
    payload = frames.member_payload(conversation_id, user_id)
    _after_commit(lambda: _to_users(user_ids, frames.MEMBER_ADDED, payload))


def member_removed(conversation_id: Any, user_id: int, user_ids: list[int]) -> None:
    """To the removed user's devices first (the messenger consumer unsubscribes
    their sockets from the conversation on it), then to the remaining members'."""
    payload = frames.member_payload(conversation_id, user_id)
    others = [other for other in user_ids if other != user_id]
    _after_commit(lambda: _to_users([user_id, *others], frames.MEMBER_REMOVED, payload))
