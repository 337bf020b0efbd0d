"""Quoted table and column names for the few statements written by hand.

The hot paths (a chat message, a socket's join) run their own SQL: through the ORM
each query cost ~300-400 µs of Python on the benchmark machine, its SQL ~20-40
(docs/performance.md). Names come from the models, so a renamed column cannot drift
from them; only these names go into the text, every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable

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
