"""A signed-in user's participant row, read or made on their first connect: by hand.

Every first connect of a signed-in user to a session runs this (a reconnect finds the
row in ``joincache``). Through the ORM, ``get_or_create`` took a read, a savepoint, the
insert, its release and a commit: ~0.9-1.2 ms of the database thread's time per first
connect on the benchmark machine (bench N1: 2,000 first connects). Here a read, and on
a miss one insert that yields to a row another connect made meanwhile (``ON CONFLICT
DO NOTHING``, on the unique (session, user) index), then the read again. Names from
``sessions_app.sql``, every value a parameter.
"""

from __future__ import annotations

import functools
from typing import Any

from sessions_app.models import Participant
from sessions_app.sql import column, insert_params, table


@functools.cache
def _read() -> str:
    return (
        f"SELECT * FROM {table(Participant)} "  # noqa: S608
        f"WHERE {column(Participant, 'session')} = %s "
        f"AND {column(Participant, 'user')} = %s"
    )


@functools.cache
def _insert() -> tuple[str, tuple]:
    """The insert (``RETURNING`` the key: SQLite 3.35+, PostgreSQL) and its fields."""
    fields = tuple(f for f in Participant._meta.concrete_fields if not f.primary_key)
    user = column(Participant, "user")
    sql = (
        f"INSERT INTO {table(Participant)} "  # noqa: S608
        f"({', '.join(column(Participant, f.name) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({column(Participant, 'session')}, {user}) "
        f"WHERE {user} IS NOT NULL DO NOTHING "
        f"RETURNING {column(Participant, 'id')}"
    )
    return sql, fields


def participant_read(*, session_id: int, user_id: Any) -> Participant | None:
    found = Participant.objects.raw(_read(), [session_id, user_id])
    return next(iter(found), None)


def participant_insert(cursor: Any, participant: Participant) -> bool:
    """Store the new ``participant`` unless the user already has a row in its
    session; whether it was stored (its key set, as ``save()`` would)."""
    sql, fields = _insert()
    cursor.execute(sql, insert_params(participant, fields, cursor.db))
    row = cursor.fetchone()
    if row is None:
        return False
    participant.pk = row[0]
    participant._state.adding = False
    participant._state.db = cursor.db.alias
    return True
