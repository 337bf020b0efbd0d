"""Full-text search over the messages a user may read, in the database's own engine.

SQLite: the FTS5 table that migration 0003 keeps in step by triggers; PostgreSQL:
``to_tsvector('simple', content)``, the expression of its GIN index. Both match every
word of the query (``plainto_tsquery``'s AND), case-insensitively, without stemming:
chat is written in many languages, so one language's stemmer would be wrong for most.
Only members' conversations are searched; a deleted message is not found (its text is
gone), an edited one by its new text.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from realtime.errors import Invalid
from sessions_app.messenger.conf import knob
from sessions_app.messenger.models import ConversationMessage
from sessions_app.sql import column, table

MAX_QUERY = 200  # characters: a search phrase, not a document
FTS_TABLE = "sessions_app_conversationmessage_fts"  # migration 0003
_WORD = re.compile(r"\w+")


def fts5_query(text: str) -> str:
    """The words of ``text``, each quoted (so FTS5 syntax in it is just text),
    all required."""
    return " ".join(f'"{word}"' for word in _WORD.findall(text))


def message_search(
    *, user: Any, q: Any, limit: int | None = None
) -> list[ConversationMessage]:
    """The newest messages matching ``q`` in the conversations ``user`` is in."""
    if not isinstance(q, str) or not q.strip():
        raise Invalid("must not be blank", field="q")
    if len(q) > MAX_QUERY:
        raise Invalid(f"at most {MAX_QUERY} characters", field="q")
    rows = ConversationMessage.objects.filter(
        conversation__members__user_id=user.pk, deleted_at__isnull=True
    )
    vendor = connection.vendor
    if vendor == "sqlite":
        words = fts5_query(q)
        if not words:
            return []
        rows = rows.filter(
            pk__in=RawSQL(  # noqa: S611  (names are constants; q is a parameter)
                f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s",  # noqa: S608
                [words],
            )
        )
    elif vendor == "postgresql":
        content = (
            f"{table(ConversationMessage)}.{column(ConversationMessage, 'content')}"
        )
        rows = rows.filter(
            RawSQL(  # noqa: S611  (names from the model; q is a parameter)
                f"to_tsvector('simple'::regconfig, {content}) "
                "@@ plainto_tsquery('simple'::regconfig, %s)",
                [q],
                output_field=BooleanField(),
            )
        )
    else:  # pragma: no cover - no full-text engine: a plain scan
        rows = rows.filter(content__icontains=q.strip())
    limit = limit or knob("MESSENGER_SEARCH_LIMIT")
    return list(rows.order_by("-created_at", "-id")[:limit])
