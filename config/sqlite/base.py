"""Django's SQLite backend with each statement's placeholders converted once.

Django writes SQL with ``%s`` placeholders and its SQLite cursor rewrites them to
sqlite3's ``?`` on every ``execute``, with a regular expression (a look-behind for
``%%``) run over the whole statement: 9-15 µs per statement here, a tenth of a
messenger send's time on the database thread, which runs the same two statements for
every message. This backend keeps the rewritten text of each statement it has seen
(the hot paths' statements are the same strings every time), so a repeated statement
is one dictionary lookup. Everything else is Django's: ``ENGINE`` is
``config.sqlite`` when ``DATABASE_URL`` names SQLite (``config/settings.py``), and
``connection.vendor`` is still ``"sqlite"``.

At most ``CONVERTED_LIMIT`` statements of at most ``CONVERTED_LENGTH`` characters
are kept per process (statements built with a varying number of placeholders,
``IN (%s, %s, …)`` or a bulk insert, would otherwise grow it without bound, and a
long one costs its conversion less than it costs to keep); any other statement is
converted as Django does and not kept.
"""

from __future__ import annotations

from django.db.backends.sqlite3 import base

CONVERTED_LIMIT = 4096
CONVERTED_LENGTH = 2048

_converted: dict[str, str] = {}


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: list | None = None) -> str:
        if param_names is not None:  # "pyformat" (a mapping of parameters): Django's
            return super().convert_query(query, param_names=param_names)
        converted = _converted.get(query)
        if converted is None:
            converted = super().convert_query(query)
            if len(query) <= CONVERTED_LENGTH and len(_converted) < CONVERTED_LIMIT:
                _converted[query] = converted
        return converted


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: str | None = None) -> SQLiteCursorWrapper:
        return self.connection.cursor(factory=SQLiteCursorWrapper)
