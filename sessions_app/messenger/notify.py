"""What the messenger's sockets are told once a write has been committed.

Services call these inside their transaction; each schedules its broadcasts with
``transaction.on_commit``, so nothing is pushed for a write that rolled back and a
REST write pushes exactly what the socket's own write would (a socket handler calls
the service through ``deferred`` and sends them from the event loop). Every frame is
encoded once per event (never per receiver) and sent through ``realtime.broadcast``:

- message-level frames (``message.*``) to the conversation's group, the sockets
  subscribed to it; ``message.new`` with its seq, for ordered delivery;
- one ``messenger.activity`` event per new message to the conversation's activity
  group (members' sockets online but not subscribed): each socket keeps its user's
  unread count and says ``conversation.activity`` itself, so a message to a group of
  1,000 costs one event, not a count query and a frame per member;
- typed events to each member's ``inbox.<id>`` group (every device of a member) where
  a socket must act, not only write: membership (join or leave the conversation's
  groups) and exact unread counts (after a read or a delete).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from django.db import transaction

from realtime.broadcast import broadcast, publish_event
from realtime.dbthread import to_database_thread
from realtime.protocol import encode_frame
from sessions_app.messenger import frames
from sessions_app.messenger.conf import knob
from sessions_app.messenger.groups import (
    activity_group,
    conversation_group,
    inbox_group,
)
from sessions_app.messenger.models import (
    Conversation,
    ConversationMember,
    ConversationMessage,
)

logger = logging.getLogger("sessions_app.messenger")

ACTIVITY = "messenger.activity"  # {"conversation_id", "seq", "sender_id"}
UNREAD = "messenger.unread"  # {"conversation_id", "seq", "unread"}
# {"conversation_id", "user_id", "joined", "member_ids"}
MEMBERSHIP = "messenger.membership"

# (group, encoded frame, seq) for a broadcast, or (group, event) for a typed event
Push = tuple[str, str, int | None] | tuple[str, dict[str, Any]]
T = TypeVar("T")


# Set by a caller on the event loop (``deferred``) around its database call: the
# pushes of the writes committed there are collected into it, and the caller sends
# them from the loop once the call returns, instead of the database thread blocking
# on ``async_to_sync`` until the loop has sent each one (bench W5: that hop, per
# send, held the one shared database thread).
_collecting: ContextVar[list[Push] | None] = ContextVar(
    "messenger_pushes", default=None
)


async def push(pushes: Iterable[Push]) -> None:
    """Send prepared pushes, in order, from the event loop."""
    for item in pushes:
        if len(item) == 3:
            await broadcast(item[0], item[1], seq=item[2])
        else:
            await publish_event(item[0], item[1])


def _send(pushes: list[Push]) -> None:
    if pushes:
        async_to_sync(push)(pushes)


async def _push_logged(pushes: list[Push]) -> None:
    # As ``robust`` on_commit callbacks: the write is stored, so a failed push is
    # logged, not answered as an error, and does not stop the others.
    for item in pushes:
        try:
            await push((item,))
        except Exception:
            logger.exception("a messenger push failed after commit")


def _after_commit(build: Callable[[], list[Push]]) -> None:
    """Build the pushes after commit (they may read committed rows) and send them,
    or hand them to the caller that is collecting them (``deferred``).

    ``robust``: a failed broadcast is logged, never turned into an error for a write
    that is already stored.
    """
    collected = _collecting.get()
    if collected is None:
        transaction.on_commit(lambda: _send(build()), robust=True)
    else:
        transaction.on_commit(lambda: collected.extend(build()), robust=True)


async def deferred(service: Callable[..., T], /, **kwargs: Any) -> T:
    """``service(**kwargs)`` on the database thread; what it pushes after commit is
    sent from the event loop when it returns (or raises: a write committed before
    the error was still made). A write rolled back pushes nothing, as ever."""
    collected: list[Push] = []
    token = _collecting.set(collected)
    try:
        return await to_database_thread(service)(**kwargs)
    finally:
        _collecting.reset(token)
        await _push_logged(collected)


def _to_users(user_ids: Iterable[int], type_: str, payload: dict) -> list[Push]:
    text = encode_frame(type_, payload)
    return [(inbox_group(user_id), text, None) for user_id in user_ids]


def _unread(conversation_id: Any, seq: int, only: int | None = None) -> list[Push]:
    """Exact unread counts to members' devices (or only user ``only``'s)."""
    from sessions_app.messenger.selectors import member_unread_counts

    counts = member_unread_counts(conversation_id=conversation_id)
    cid = str(conversation_id)
    return [
        (
            inbox_group(user_id),
            {"type": UNREAD, "conversation_id": cid, "seq": seq, "unread": unread},
        )
        for user_id, unread in counts.items()
        if only is None or user_id == only
    ]


def _membership(
    conversation_id: Any,
    user_id: int | None,
    joined: bool,
    user_ids: list[int],
    members: Sequence[int] = (),
) -> list[Push]:
    """To every device of ``user_ids``: the sockets of ``user_id`` (all of them when
    ``None``) join or leave the conversation's groups. ``members`` of a conversation
    small enough to show presence become each other's contacts (``member_ids``)."""
    small = len(members) <= knob("MESSENGER_PRESENCE_MAX_GROUP")
    event = {
        "type": MEMBERSHIP,
        "conversation_id": str(conversation_id),
        "user_id": user_id,
        "joined": joined,
        "member_ids": list(members) if small else [],
    }
    return [(inbox_group(member), event) for member in user_ids]


def message_new(message: ConversationMessage) -> None:
    text = encode_frame(frames.MESSAGE_NEW, frames.message_payload(message))
    cid = message.conversation_id
    activity = {
        "type": ACTIVITY,
        "conversation_id": str(cid),
        "seq": message.seq,
        "sender_id": message.sender_id,
    }
    _after_commit(
        lambda: [
            (conversation_group(cid), text, message.seq),
            (activity_group(cid), activity),
        ]
    )


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
        return [(group, text, None), *_unread(message.conversation_id, last_seq)]

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
        return [
            (group, text, None),
            *_unread(member.conversation_id, last_seq, only=member.user_id),
        ]

    _after_commit(build)


def conversation_created(conversation: Conversation, user_ids: list[int]) -> None:
    """Every member's devices start hearing of it, then are told."""
    payload = frames.conversation_payload(conversation)
    _after_commit(
        lambda: (
            _membership(conversation.pk, None, True, user_ids, user_ids)
            + _to_users(user_ids, frames.CONVERSATION_CREATED, payload)
        )
    )


def conversation_updated(conversation: Conversation, user_ids: list[int]) -> None:
    payload = frames.conversation_payload(conversation)
    _after_commit(lambda: _to_users(user_ids, frames.CONVERSATION_UPDATED, payload))


def conversation_deleted(conversation_id: Any, user_ids: list[int]) -> None:
    """Every former member's sockets drop it (as on ``member.removed``)."""
    payload = {"conversation_id": str(conversation_id)}
    _after_commit(
        lambda: (
            _membership(conversation_id, None, False, user_ids)
            + _to_users(user_ids, frames.CONVERSATION_DELETED, payload)
        )
    )


def member_added(conversation_id: Any, user_id: int, user_ids: list[int]) -> None:
    """To every member's devices, the new member's included (which join first);
    in a small group, the new member and the others become contacts."""
    payload = frames.member_payload(conversation_id, user_id)
    _after_commit(
        lambda: (
            _membership(conversation_id, user_id, True, user_ids, user_ids)
            + _to_users(user_ids, frames.MEMBER_ADDED, payload)
        )
    )


def member_removed(conversation_id: Any, user_id: int, user_ids: list[int]) -> None:
    """The removed user's sockets leave the conversation's groups at once, on every
    process, before anyone is told; then its devices and the remaining members'."""
    payload = frames.member_payload(conversation_id, user_id)
    others = [other for other in user_ids if other != user_id]
    _after_commit(
        lambda: (
            _membership(conversation_id, user_id, False, [user_id])
            + _to_users([user_id, *others], frames.MEMBER_REMOVED, payload)
        )
    )
