"""Writes of messages and reactions: send, edit, delete (a tombstone), react.

Same rules as ``messenger.services`` (which re-exports these): keyword-only, one
transaction, frames pushed after commit, ``realtime.errors`` only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from realtime.batching import store_together
from realtime.errors import (
    Conflict,
    Invalid,
    NotFound,
    PermissionDenied,
)
from sessions_app.messenger import notify
from sessions_app.messenger.access import (
    NO_CONVERSATION,
    client_id_clean,
    content_clean,
    conversation_uuid,
    emoji_clean,
    message_for_member,
    positive_int,
)
from sessions_app.messenger.message_sql import (
    SendSQL,
    current_sql,
    seq_take,
    uuid_param,
)
from sessions_app.messenger.models import (
    Conversation,
    ConversationMessage,
    MessageReaction,
    MessageRevision,
)
from sessions_app.messenger.selectors import is_member, reaction_counts
from sessions_app.sql import insert_row


def message_send(
    *,
    conversation_id: Any,
    user: Any,
    content: Any,
    client_id: Any = None,
    reply_to: Any = None,
) -> tuple[ConversationMessage, bool]:
    """Store a message with the conversation's next seq; ``(message, created)``.

    The conversation row is written first (``last_seq = last_seq + 1``, only if the
    sender is a member), which locks it until commit: two server processes never
    hand out one seq twice, and a refused send takes none. A ``client_id`` the sender
    used before in this conversation returns the original, unchanged, and stores
    and pushes nothing (``created`` false: the caller re-sends it to the sender).
    """
    sql = current_sql()
    cleaned = _send_clean(conversation_id, content, client_id, reply_to)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            return _store(cursor, sql, user, *cleaned)
    except IntegrityError:
        # Another process stored the same client_id between our check and insert.
        original = None
        if cleaned[2] is not None:
            original = ConversationMessage.objects.filter(
                conversation_id=cleaned[0], sender_id=user.pk, client_id=cleaned[2]
            ).first()
        if original is None:
            raise
        return original, False


def messages_send(
    *, sends: Sequence[Mapping[str, Any]]
) -> list[tuple[ConversationMessage, bool] | Exception]:
    """Several sends (each ``message_send``'s keyword arguments) in one transaction
    (``store_together``); one result per send, in order: ``(message, created)``, or
    the error that refused it (a ``DomainError``, which wrote nothing).

    A commit costs more than a send here (SQLite flushes the search index at each,
    ~0.3 ms), so sends that queued while the database was busy share one.
    Conversations' rows are locked in id order; if the transaction fails as a whole
    (another process's duplicate ``client_id`` on PostgreSQL aborts it), each send
    is made again alone, by ``message_send``.
    """
    sql = current_sql()

    def store(cursor: Any, send: Mapping[str, Any]) -> tuple[ConversationMessage, bool]:
        cleaned = _send_clean(
            send.get("conversation_id"),
            send.get("content"),
            send.get("client_id"),
            send.get("reply_to"),
        )
        return _store(cursor, sql, send["user"], *cleaned)

    return store_together(
        sends,
        store=store,
        alone=lambda send: message_send(**send),
        lock_order=lambda send: str(send.get("conversation_id")),
    )


def _send_clean(
    conversation_id: Any, content: Any, client_id: Any, reply_to: Any
) -> tuple[uuid.UUID, str, str | None, int | None]:
    return (
        conversation_uuid(conversation_id),
        content_clean(content),
        client_id_clean(client_id),
        None if reply_to is None else positive_int(reply_to, "reply_to"),
    )


def _store(
    cursor: Any,
    sql: SendSQL,
    user: Any,
    conversation_id: uuid.UUID,
    text: str,
    client_id: str | None,
    reply_id: int | None,
) -> tuple[ConversationMessage, bool]:
    """One send inside the caller's transaction. A refusal leaves the transaction
    as it found it, so that the other sends of a batch go on."""
    conversation = uuid_param(conversation_id)
    # Write first: the row lock (PostgreSQL) or the write lock (SQLite) is taken
    # before anything is read, so nothing read here can go stale.
    seq = seq_take(
        cursor, sql, conversation=conversation, user_id=user.pk, client_id=client_id
    )
    if seq is None:  # nothing was written: why?
        return _refused(cursor, sql, conversation_id, user, client_id), False
    if reply_id is not None:
        cursor.execute(sql.reply_found, [reply_id, conversation])
        if cursor.fetchone() is None:
            cursor.execute(sql.unbump, [conversation])  # the row is still ours
            raise Invalid("no such message in this conversation", field="reply_to")
    message = ConversationMessage(
        conversation_id=conversation_id,
        seq=seq,
        sender_id=user.pk,
        content=text,
        client_id=client_id,
        reply_to_id=reply_id,
    )
    insert_row(cursor, sql.insert, message)
    notify.message_new(message)
    return message, True


def _refused(
    cursor: Any, sql: SendSQL, conversation_id: Any, user: Any, client_id: str | None
) -> ConversationMessage:
    """Why ``seq_take`` wrote nothing: the original of a retried ``client_id``, or
    ``NotFound`` for a non-member (a member of a conversation that exists)."""
    if client_id is not None and is_member(
        conversation_id=conversation_id, user_id=user.pk
    ):
        params = [uuid_param(conversation_id), user.pk, client_id]
        cursor.execute(sql.duplicate, params)
        row = cursor.fetchone()
        if row is not None:
            return ConversationMessage.objects.get(pk=row[0])
    raise NotFound(NO_CONVERSATION)


def _own_message(
    *, message_id: Any, user: Any, conversation_id: Any, what: str
) -> ConversationMessage:
    """The caller's own message, locked for this transaction; not deleted."""
    message, _ = message_for_member(
        message_id=message_id, user=user, conversation_id=conversation_id
    )
    message = ConversationMessage.objects.select_for_update().get(pk=message.pk)
    if message.sender_id != user.pk:
        raise PermissionDenied(f"only the author may {what} a message")
    return message


def message_edit(
    *, message_id: Any, user: Any, content: Any, conversation_id: Any = None
) -> ConversationMessage:
    """The author replaces the text; the previous text is kept as a revision.

    The same text again changes nothing and pushes nothing.
    """
    text = content_clean(content)
    with transaction.atomic():
        message = _own_message(
            message_id=message_id,
            user=user,
            conversation_id=conversation_id,
            what="edit",
        )
        if message.deleted_at is not None:
            raise Conflict("the message was deleted")
        if text == message.content:
            return message
        MessageRevision.objects.create(message=message, content=message.content)
        message.content, message.edited_at = text, timezone.now()
        message.save(update_fields=["content", "edited_at"])
        notify.message_edited(message)
    return message


def message_delete(
    *, message_id: Any, user: Any, conversation_id: Any = None
) -> ConversationMessage:
    """The author deletes a message: it stays as a tombstone (its seq, no content),
    so history stays gapless. Its earlier versions and reactions go with the text.
    Deleting a tombstone again changes nothing."""
    with transaction.atomic():
        message = _own_message(
            message_id=message_id,
            user=user,
            conversation_id=conversation_id,
            what="delete",
        )
        if message.deleted_at is not None:
            return message
        message.content, message.deleted_at = "", timezone.now()
        message.save(update_fields=["content", "deleted_at"])
        MessageRevision.objects.filter(message=message).delete()
        MessageReaction.objects.filter(message=message).delete()
        last_seq = Conversation.objects.values_list("last_seq", flat=True).get(
            pk=message.conversation_id
        )
        notify.message_deleted(message, last_seq)
    return message


def reaction_toggle(
    *, message_id: Any, user: Any, emoji: Any, conversation_id: Any = None
) -> tuple[dict[str, int], bool]:
    """Add the caller's ``emoji`` to a message, or take it back if there;
    ``(counts per emoji, added)``. Any member may react; not to a tombstone."""
    emoji = emoji_clean(emoji)
    with transaction.atomic():
        message, _ = message_for_member(
            message_id=message_id, user=user, conversation_id=conversation_id
        )
        if message.deleted_at is not None:
            raise Conflict("the message was deleted")
        removed, _ = MessageReaction.objects.filter(
            message=message, user_id=user.pk, emoji=emoji
        ).delete()
        if not removed:
            try:
                with transaction.atomic():
                    MessageReaction.objects.create(
                        message=message, user_id=user.pk, emoji=emoji
                    )
            except IntegrityError:  # a second toggle at the same moment added it
                pass
        counts = reaction_counts(message_ids=[message.pk]).get(message.pk, {})
        notify.message_reactions(message, counts)
    return counts, not removed
