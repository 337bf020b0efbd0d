"""The hot paths run their own SQL (sessions_app.sql): ``message_post`` and what a
joining socket reads or makes must hold on PostgreSQL too, where the new row's id
comes back by RETURNING and booleans are real booleans."""

from __future__ import annotations

from tests.e2e.server import run_on_fresh_postgres

SCRIPT = """
import json
from django.contrib.auth import get_user_model
from sessions_app import selectors, services
from django.db import connection
from sessions_app.models import Message, Participant
from sessions_app.participant_sql import participant_insert

host = get_user_model().objects.create_user("pg-host")
session = services.session_create(host=host, title="pg", moderated=True)
guest, _ = services.participant_guest_join(session=session, nickname="ann")
first, created = services.message_post(
    session_id=session.pk, participant=guest, content="hi", client_id="c1"
)
again, again_created = services.message_post(
    session_id=session.pk, participant=guest, content="hi?", client_id="c1"
)
pending, _ = services.message_post(
    session_id=session.pk, participant=guest, content="why?", kind="question"
)
second, _ = services.message_post(session_id=session.pk, participant=guest, content="b")
services.session_close(session_id=session.pk)
try:
    services.message_post(session_id=session.pk, participant=guest, content="late")
    closed = "stored"
except services.SessionClosed:
    closed = "refused"
ada = get_user_model().objects.create_user("pg-ada")
joined = services.participant_for_user(session=session, user=ada)
rejoined = services.participant_for_user(session=session, user=ada)
hosting = services.participant_for_user(session=session, user=host)
with connection.cursor() as cursor:  # a second first connect, after the read
    late = Participant(session=session, user=ada, nickname="x")
    raced = participant_insert(cursor, late)
stored = Message.objects.get(pk=first.pk)
everyone = selectors.session_backlog(session_id=session.pk)
own = selectors.session_backlog(session_id=session.pk, participant_id=guest.pk)
found = selectors.session_get(code=session.code.lower())
member = selectors.participant_get(session_id=session.pk, participant_id=guest.pk)
stranger = selectors.participant_get(session_id=session.pk + 1, participant_id=guest.pk)
print(json.dumps({
    "first": [first.pk == stored.pk, first.seq, created, stored.nickname],
    "created_at": first.created_at == stored.created_at,
    "again": [again.pk == first.pk, again_created, again.content],
    "pending": [pending.seq, pending.approved],
    "second": second.seq,
    "rows": Message.objects.filter(session=session).count(),
    "closed": closed,
    "backlog": [
        everyone.last_seq,
        [q.pk for q in everyone.pending_questions] == [pending.pk],
        [q.pk for q in own.pending_questions] == [pending.pk],
    ],
    "found": [found.pk == session.pk, found.moderated, member.nickname, stranger],
    "joined": [
        joined.pk == rejoined.pk, joined.role, hosting.role, raced,
        Participant.objects.filter(session=session, user=ada).count(),
    ],
}))
"""


def test_message_post_on_postgres(tmp_path):
    out = run_on_fresh_postgres(tmp_path, SCRIPT)
    assert out == {
        "first": [True, 1, True, "ann"],
        "created_at": True,
        "again": [True, False, "hi"],
        "pending": [None, False],
        "second": 2,
        "rows": 3,
        "closed": "refused",
        "backlog": [2, True, True],
        "found": [True, True, "ann", None],
        "joined": [True, "member", "host", False, 1],
    }
