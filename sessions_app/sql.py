"""Quoted table and column names for the few statements written by hand.

The hot paths (a chat message, a socket's join) run their own SQL: through the ORM
each query cost ~300-400 µs of Python on the benchmark machine, its SQL ~20-40
(docs/performance.md). Names come from the models, so a renamed column cannot drift
from them; only these names go into the text, every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, models


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[models.Model], field: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(field).column)


def insert_params(instance: models.Model, fields: Iterable[models.Field], db) -> list:
    """The values ``save()`` would write for a new ``instance`` (each field's
    ``pre_save``: defaults, ``auto_now_add``), prepared for the connection ``db``.

    A ``None`` is written as NULL without the field's preparation, which is what
    every nullable field of the hand-written inserts prepares it to (their tests
    check it) and cost ~6 µs a field on the benchmark machine: three such fields
    in every message.
    """
    params = []
    for field in fields:
        value = field.pre_save(instance, True)
        params.append(None if value is None else field.get_db_prep_save(value, db))
    return params


@dataclass(frozen=True)
class Insert:
    """A hand-written INSERT of a new row: every concrete field but the key (a field
    computed by the database, ``db_default`` or ``GeneratedField``, added to the
    model would need leaving out, as ``save()`` does)."""

    sql: str
    fields: tuple[models.Field, ...]
    returning: bool  # the key comes back by RETURNING, else it is ``lastrowid``


def insert_statement(
    model: type[models.Model], *, returning: bool, on_conflict: str = ""
) -> Insert:
    """``returning``: the database has it for this statement (PostgreSQL; SQLite
    3.35+); ``on_conflict``: a clause after the values, e.g. ``ON CONFLICT … DO
    NOTHING``."""
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key)
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if on_conflict:
        sql += f" {on_conflict}"
    if returning:
        sql += f" RETURNING {quote(model._meta.pk.column)}"
    return Insert(sql=sql, fields=fields, returning=returning)


def insert_row(cursor: Any, insert: Insert, instance: models.Model) -> bool:
    """Store the new ``instance`` as ``save()`` would (defaults, ``auto_now_add``),
    its key and state set as ``save()`` leaves them; whether a row was stored (an
    ``on_conflict`` clause may store none). No model signal is sent.

    The cursor's own connection, not Django's ``connection`` proxy, which looks the
    connection up again (a context-local read) on every attribute.
    """
    db = cursor.db
    cursor.execute(insert.sql, insert_params(instance, insert.fields, db))
    if insert.returning:
        row = cursor.fetchone()
        if row is None:
            return False
        instance.pk = row[0]
    elif cursor.rowcount == 1:
        instance.pk = cursor.lastrowid
    else:
        return False
    instance._state.adding = False
    instance._state.db = db.alias
    return True
