"""A signed-in user's participant row, made on their first connect: by hand.

Every first connect of a signed-in user to a session runs this (a reconnect finds the
row in ``joincache``). Through the ORM, ``get_or_create`` took a read, a savepoint, the
insert, its release and a commit: ~0.9-1.2 ms of the database thread's time per first
connect on the benchmark machine (bench N1: 2,000 first connects). Now a read
(``selectors.participant_of_user``) and, on a miss, this one insert, which yields to
a row another connect made meanwhile (``ON CONFLICT DO NOTHING``, on the unique
(session, user) index); then the read again. Names from ``sessions_app.sql``, every
value a parameter.
"""

from __future__ import annotations

import functools
from typing import Any

from sessions_app.models import Participant
from sessions_app.sql import column, insert_params, table


@functools.cache
def _insert(returning: bool) -> tuple[str, tuple]:
    """The insert and its fields; ``returning``: the database hands the key back
    (``features.can_return_columns_from_insert``: SQLite 3.35+, PostgreSQL), else
    it is ``lastrowid`` (SQLite before 3.35, which Django still takes)."""
    fields = tuple(f for f in Participant._meta.concrete_fields if not f.primary_key)
    user = column(Participant, "user")
    sql = (
        f"INSERT INTO {table(Participant)} "  # noqa: S608
        f"({', '.join(column(Participant, f.name) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({column(Participant, 'session')}, {user}) "
        f"WHERE {user} IS NOT NULL DO NOTHING"
    )
    if returning:
        sql += f" RETURNING {column(Participant, 'id')}"
    return sql, fields


def participant_insert(cursor: Any, participant: Participant) -> bool:
    """Store the new ``participant`` unless the user already has a row in its
    session; whether it was stored (its key set, as ``save()`` would). No model
    signal is sent (``save()`` would send ``pre_save`` and ``post_save``)."""
    db = cursor.db
    returning = db.features.can_return_columns_from_insert
    sql, fields = _insert(returning)
    cursor.execute(sql, insert_params(participant, fields, db))
    if returning:
        row = cursor.fetchone()
        if row is None:
            return False
        participant.pk = row[0]
    elif cursor.rowcount == 1:
        participant.pk = cursor.lastrowid
    else:
        return False
    participant._state.adding = False
    participant._state.db = cursor.db.alias
    return True
