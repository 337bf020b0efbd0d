"""Full-text search over conversation messages, in each database's own engine.

SQLite: an FTS5 table over the message table's ``content`` (external content, so the
text is stored once), kept in step by triggers. PostgreSQL: a GIN index on
``to_tsvector('simple', content)``, the expression ``messenger.search`` filters by.
Other databases get nothing (search falls back to a plain ``icontains``).

A later migration that makes SQLite rebuild the message table (most ALTERs do) drops
its triggers: such a migration must run ``messenger_search_sqlite`` again.
"""

from django.db import migrations

TABLE = "sessions_app_conversationmessage"
FTS = "sessions_app_conversationmessage_fts"

SQLITE_CREATE = [
    f"CREATE VIRTUAL TABLE {FTS} USING fts5("
    f"content, content='{TABLE}', content_rowid='id')",
    f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')",
    f"CREATE TRIGGER {FTS}_ai AFTER INSERT ON {TABLE} BEGIN "
    f"INSERT INTO {FTS}(rowid, content) VALUES (new.id, new.content); END",
    f"CREATE TRIGGER {FTS}_ad AFTER DELETE ON {TABLE} BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, content) VALUES ('delete', old.id, old.content); "
    "END",
    f"CREATE TRIGGER {FTS}_au AFTER UPDATE OF content ON {TABLE} BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, content) VALUES ('delete', old.id, old.content); "
    f"INSERT INTO {FTS}(rowid, content) VALUES (new.id, new.content); END",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {FTS}_au",
    f"DROP TRIGGER IF EXISTS {FTS}_ad",
    f"DROP TRIGGER IF EXISTS {FTS}_ai",
    f"DROP TABLE IF EXISTS {FTS}",
]
POSTGRES_CREATE = [
    f"CREATE INDEX conversation_message_fts ON {TABLE} "
    "USING GIN (to_tsvector('simple'::regconfig, content))"
]
POSTGRES_DROP = ["DROP INDEX IF EXISTS conversation_message_fts"]


def _run(statements: dict[str, list[str]]):
    def run(apps, schema_editor):
        for sql in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


messenger_search_sqlite = _run({"sqlite": SQLITE_CREATE})


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0002_messenger")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_CREATE, "postgresql": POSTGRES_CREATE}),
            _run({"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}),
            elidable=False,
        )
    ]
