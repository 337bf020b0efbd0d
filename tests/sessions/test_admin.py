"""The Django admin of live sessions: lists, inlines, close and CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from sessions_app import services
from sessions_app.models import Message, Participant, Session
from tests.conftest import closed_with
from tests.sessions.conftest import create_session, guest, join, of_type

CHANGELIST = "/admin/sessions_app/session/"


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def action(client: Client, name: str, *sessions, url: str = CHANGELIST):
    return client.post(
        url,
        {"action": name, "_selected_action": [s.pk for s in sessions]},
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_close_action_closes_the_sockets_with_4010(host, staff):
    session = await create_session(host)
    untouched = await create_session(host, title="other")
    _, token = await guest(session, "a")
    _, token2 = await guest(session, "b")
    _, token3 = await guest(untouched, "c")
    a, _ = await join(session.code, token)
    b, _ = await join(session.code, token2)
    c, _ = await join(untouched.code, token3)
    client = Client()
    await sync_to_async(client.force_login)(staff)
    reply = await sync_to_async(action)(client, "close_sessions", session)
    assert reply.status_code == 302
    for comm in (a, b):
        assert (await of_type(comm, "session.closed", 1))[0]["code"] == session.code
        assert await closed_with(comm) == 4010
    await c.send_to(text_data='{"type": "ping", "payload": {"still": 1}}')
    assert (await of_type(c, "pong", 1))[0] == {"still": 1}
    refreshed = await sync_to_async(Session.objects.get)(pk=session.pk)
    assert refreshed.status == "closed" and refreshed.closed_at is not None
    for comm in (a, b, c):
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_deleting_in_the_admin_closes_the_sockets(host, staff):
    session = await create_session(host)
    _, token = await guest(session, "a")
    a, _ = await join(session.code, token)
    client = Client()
    await sync_to_async(client.force_login)(staff)
    url = f"{CHANGELIST}{session.pk}/delete/"
    reply = await sync_to_async(client.post)(url, {"post": "yes"})
    assert reply.status_code == 302
    assert await closed_with(a) == 4010
    await a.disconnect()


@pytest.mark.django_db
def test_changelist_shows_status_counts_and_searches(admin_client, host, session):
    services.participant_guest_join(session=session, nickname="g1")
    other = services.session_create(host=host, title="Budget review")
    reply = admin_client.get(CHANGELIST)
    assert reply.status_code == 200
    html = reply.content.decode()
    assert session.code in html and other.code in html
    assert "column-participant_count" in html and "column-online_count" in html
    assert '<td class="field-participant_count">2</td>' in html  # host + g1
    assert '<td class="field-online_count">0</td>' in html
    assert '<td class="field-status">open</td>' in html
    found = admin_client.get(CHANGELIST, {"q": session.code.lower()}).content.decode()
    assert session.code in found and other.code not in found
    found = admin_client.get(CHANGELIST, {"q": "budget"}).content.decode()
    assert other.code in found and session.code not in found
    sorted_ = admin_client.get(CHANGELIST, {"o": "6"})  # by participant count
    assert sorted_.status_code == 200


@pytest.mark.django_db
def test_change_page_has_read_only_history(admin_client, session):
    guest_row, _ = services.participant_guest_join(session=session, nickname="g1")
    services.message_post(session_id=session.pk, participant=guest_row, content="hello")
    reply = admin_client.get(f"{CHANGELIST}{session.pk}/change/")
    assert reply.status_code == 200
    html = reply.content.decode()
    assert "hello" in html and "g1" in html
    assert 'name="messages-0-content"' not in html  # not editable
    assert 'name="participants-0-nickname"' in html  # a nickname may be fixed


@pytest.mark.django_db
def test_add_in_the_admin_makes_the_host_a_participant(admin_client, host):
    reply = admin_client.post(
        "/admin/sessions_app/session/add/",
        {
            "kind": "live",
            "title": "From the admin",
            "host": host.pk,
            "participants-TOTAL_FORMS": "0",
            "participants-INITIAL_FORMS": "0",
            "messages-TOTAL_FORMS": "0",
            "messages-INITIAL_FORMS": "0",
        },
    )
    assert reply.status_code == 302, reply.content.decode()[:2000]
    session = Session.objects.get(title="From the admin")
    assert len(session.code) == 8
    assert Participant.objects.get(session=session).role == "host"


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_editing_the_title_in_the_admin_reaches_the_sockets(host, staff):
    session = await create_session(host)
    _, token = await guest(session, "a")
    a, _ = await join(session.code, token)
    client = Client()
    await sync_to_async(client.force_login)(staff)
    host_row = await sync_to_async(session.participants.get)(role="host")
    reply = await sync_to_async(client.post)(
        f"{CHANGELIST}{session.pk}/change/",
        {
            "kind": "live",
            "title": "Renamed here",
            "host": host.pk,
            "moderated": "on",
            "participants-TOTAL_FORMS": "1",
            "participants-INITIAL_FORMS": "1",
            "participants-0-id": host_row.pk,
            "participants-0-session": session.pk,
            "participants-0-nickname": "hosty",
            "messages-TOTAL_FORMS": "0",
            "messages-INITIAL_FORMS": "0",
        },
    )
    assert reply.status_code == 302
    (updated,) = await of_type(a, "session.updated", 1)
    assert updated["title"] == "Renamed here" and updated["moderated"] is True
    await a.disconnect()


@pytest.mark.django_db
def test_export_messages_as_csv(admin_client, host, session):
    guest_row, _ = services.participant_guest_join(session=session, nickname="g1")
    for content in ("first", '=HYPERLINK("http://evil")', "line\nbreak"):
        services.message_post(
            session_id=session.pk, participant=guest_row, content=content
        )
    services.session_update(session=session, moderated=True)
    services.message_post(
        session_id=session.pk,
        participant=guest_row,
        content="pending?",
        kind="question",
    )
    reply = action(admin_client, "export_messages_csv", session)
    assert reply.status_code == 200
    assert reply["Content-Type"].startswith("text/csv")
    assert f"session-messages-{session.code}.csv" in reply["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.content.decode())))
    assert [r["seq"] for r in rows] == ["1", "2", "3", ""]
    assert rows[0]["content"] == "first" and rows[0]["nickname"] == "g1"
    assert rows[1]["content"].startswith("'=")  # no formula for spreadsheets
    assert rows[2]["content"] == "line\nbreak"
    assert rows[3]["kind"] == "question" and rows[3]["approved"] == "False"
    both = action(
        admin_client,
        "export_messages_csv",
        session,
        services.session_create(host=host, title="x"),
    )
    assert "session-messages-2" in both["Content-Disposition"]


@pytest.mark.django_db
def test_message_admin_lists_and_hides(admin_client, session):
    guest_row, _ = services.participant_guest_join(session=session, nickname="g1")
    short, _ = services.message_post(
        session_id=session.pk, participant=guest_row, content="s"
    )
    long, _ = services.message_post(
        session_id=session.pk, participant=guest_row, content="y" * 120
    )
    url = "/admin/sessions_app/message/"
    html = admin_client.get(url, {"q": session.code}).content.decode()
    assert "y" * 79 + "…" in html
    reply = action(admin_client, "hide_messages", short, long, url=url)
    assert reply.status_code == 302
    assert set(Message.objects.values_list("hidden", flat=True)) == {True}
    assert admin_client.get(f"{url}{short.pk}/change/").status_code == 200
    assert admin_client.get(f"{url}add/").status_code == 403
