"""The hot paths run their own SQL (sessions_app.sql): ``message_post`` and what a
joining socket reads must hold on PostgreSQL too, where the new row's id comes back by
RETURNING and booleans are real booleans."""

from __future__ import annotations

from tests.e2e.server import run_on_fresh_postgres

SCRIPT = """
import json
from django.contrib.auth import get_user_model
from sessions_app import selectors, services
from sessions_app.models import Message

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
    }
