"""A messenger send's statements, the hot path of every message: written by hand."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.db import connection

from sessions_app.messenger.models import (
    Conversation,
    ConversationMember,
    ConversationMessage,
)
from sessions_app.sql import Insert, column, insert_statement, table


@dataclass(frozen=True)
class SendSQL:
    """``message_send``'s statements, built once from the models' metadata.

    Through the ORM a send cost ~2 ms of Python in five queries (bench W5: the one
    database thread was the bound); these are the same statements, fewer of them:
    ``bump_new`` takes the next seq only if the sender is a member and has not used
    the ``client_id`` before (one trip instead of three), and hands the seq back by
    RETURNING where the database has it. Placeholders in Django's ``%s`` style for
    both databases; names from ``sessions_app.sql`` (hence ``noqa: S608``), every
    value a parameter.
    """

    bump: str  # membership only: a send without client_id
    bump_new: str  # membership and no earlier message with this client_id
    unbump: str  # gives back the seq just taken, in the same transaction
    returning: bool  # bump and insert RETURNING (else a read, and lastrowid)
    last_seq: str
    duplicate: str
    reply_found: str
    insert: Insert


@functools.cache
def send_sql(vendor: str, returning: bool) -> SendSQL:
    """``vendor``: the connection's; ``returning``: whether it has RETURNING
    (``features.can_return_columns_from_insert``: SQLite 3.35+, PostgreSQL)."""
    conversation, member = table(Conversation), table(ConversationMember)
    message = table(ConversationMessage)
    cid, last_seq = column(Conversation, "id"), column(Conversation, "last_seq")
    msg_id = column(ConversationMessage, "id")
    msg_conversation = column(ConversationMessage, "conversation")
    mine = (
        f"{msg_conversation} = %s AND {column(ConversationMessage, 'sender')} = %s "
        f"AND {column(ConversationMessage, 'client_id')} = %s"
    )
    bump = (
        f"UPDATE {conversation} SET {last_seq} = {last_seq} + 1 "  # noqa: S608
        f"WHERE {cid} = %s AND EXISTS (SELECT 1 FROM {member} "
        f"WHERE {column(ConversationMember, 'conversation')} = %s "
        f"AND {column(ConversationMember, 'user')} = %s)"
    )
    bump_new = f"{bump} AND NOT EXISTS (SELECT 1 FROM {message} WHERE {mine})"  # noqa: S608
    if returning:
        bump, bump_new = (
            f"{bump} RETURNING {last_seq}",
            f"{bump_new} RETURNING {last_seq}",
        )
    return SendSQL(
        bump=bump,
        bump_new=bump_new,
        unbump=(
            f"UPDATE {conversation} SET {last_seq} = {last_seq} - 1 "  # noqa: S608
            f"WHERE {cid} = %s"
        ),
        returning=returning,
        last_seq=f"SELECT {last_seq} FROM {conversation} WHERE {cid} = %s",  # noqa: S608
        duplicate=f"SELECT {msg_id} FROM {message} WHERE {mine}",  # noqa: S608
        reply_found=(
            f"SELECT 1 FROM {message} WHERE {msg_id} = %s "  # noqa: S608
            f"AND {msg_conversation} = %s"
        ),
        insert=insert_statement(ConversationMessage, returning=returning),
    )


def current_sql() -> SendSQL:
    """The statements for the default connection."""
    return send_sql(
        connection.vendor, connection.features.can_return_columns_from_insert
    )


def uuid_param(value: Any) -> Any:
    """A conversation id as the database stores it (a hex string on SQLite)."""
    return Conversation._meta.pk.get_db_prep_value(value, connection)


def seq_take(
    cursor: Any, sql: SendSQL, *, conversation: Any, user_id: int, client_id: str | None
) -> int | None:
    """Raise the conversation's ``last_seq`` and return it; ``None`` (nothing
    written) if ``user_id`` is not a member or already sent ``client_id`` there."""
    if client_id is None:
        cursor.execute(sql.bump, [conversation, conversation, user_id])
    else:
        cursor.execute(
            sql.bump_new,
            [conversation, conversation, user_id, conversation, user_id, client_id],
        )
    if sql.returning:
        row = cursor.fetchone()
        return None if row is None else row[0]
    if not cursor.rowcount:
        return None
    cursor.execute(sql.last_seq, [conversation])
    return cursor.fetchone()[0]
