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
from sessions_app.sql import Insert, column, insert_row, insert_statement


@functools.cache
def _insert(returning: bool) -> Insert:
    """``returning``: ``features.can_return_columns_from_insert`` (SQLite 3.35+,
    PostgreSQL); without it the key is ``lastrowid`` (older SQLite, which Django
    still takes)."""
    user = column(Participant, "user")
    return insert_statement(
        Participant,
        returning=returning,
        on_conflict=(
            f"ON CONFLICT ({column(Participant, 'session')}, {user}) "
            f"WHERE {user} IS NOT NULL DO NOTHING"
        ),
    )


def participant_insert(cursor: Any, participant: Participant) -> bool:
    """Store the new ``participant`` unless the user already has a row in its
    session; whether it was stored (its key set, as ``save()`` would). No model
    signal is sent (``save()`` would send ``pre_save`` and ``post_save``)."""
    returning = cursor.db.features.can_return_columns_from_insert
    return insert_row(cursor, _insert(returning), participant)
