"""Quoted table and column names for the few statements written by hand.

The hot paths (a chat message, a socket's join) run their own SQL: through the ORM
each query cost ~300-400 µs of Python on the benchmark machine, its SQL ~20-40
(docs/performance.md). Names come from the models, so a renamed column cannot drift
from them; only these names go into the text, every value is a parameter.
"""

from __future__ import annotations

from django.db import connection, models


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[models.Model], field: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(field).column)
