"""A chat message's statements, the hot path of every message: written by hand.

Names come from ``sessions_app.sql`` (built from the models), every value is a
parameter. ``services.message_post`` runs them on the cursor in one transaction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sessions_app.models import Message, Participant, Session
from sessions_app.sql import Insert, column, insert_statement, table


@dataclass(frozen=True)
class MessageSQL:
    """``message_post``'s statements: the hot path of every chat message.

    Built once from the models' metadata and run on the cursor: through the ORM each
    of these four statements cost ~400 µs of Python on this machine, their SQL ~40
    (bench W1: a 100-person room was bound by it). Same statements as the ORM would
    send, placeholders in Django's ``%s`` style for both databases; names from
    ``sessions_app.sql`` (hence the ``noqa: S608``), every value a parameter.
    """

    bump: str
    bump_unless_moderated: str
    duplicate: str
    found: str
    insert: Insert


@functools.cache
def message_sql(vendor: str) -> MessageSQL:
    session, participant, message = table(Session), table(Participant), table(Message)
    last_seq, moderated = column(Session, "last_seq"), column(Session, "moderated")
    where_open = (
        f"WHERE {column(Session, 'id')} = %s AND {column(Session, 'status')} = %s"
    )
    # SQLite: cursor.lastrowid, on every version Django takes
    insert = insert_statement(Message, returning=vendor != "sqlite")
    return MessageSQL(
        bump=f"UPDATE {session} SET {last_seq} = {last_seq} + 1 {where_open}",  # noqa: S608
        bump_unless_moderated=(
            f"UPDATE {session} SET {last_seq} = CASE WHEN {moderated} "  # noqa: S608
            f"THEN {last_seq} ELSE {last_seq} + 1 END {where_open}"
        ),
        duplicate=(
            f"SELECT {column(Message, 'id')} FROM {message} "  # noqa: S608
            f"WHERE {column(Message, 'session')} = %s "
            f"AND {column(Message, 'participant')} = %s "
            f"AND {column(Message, 'client_id')} = %s"
        ),
        found=(
            f"SELECT p.{column(Participant, 'nickname')}, s.{last_seq}, s.{moderated} "  # noqa: S608
            f"FROM {participant} p JOIN {session} s "
            f"ON s.{column(Session, 'id')} = p.{column(Participant, 'session')} "
            f"WHERE p.{column(Participant, 'id')} = %s "
            f"AND p.{column(Participant, 'session')} = %s"
        ),
        insert=insert,
    )
