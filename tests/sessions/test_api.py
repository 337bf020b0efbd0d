"""REST: /api/sessions/... (docs/protocol.md §9) and the session pages."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from realtime.tokens import scoped_token_issue
from sessions_app import services
from sessions_app.models import Participant
from tests.conftest import access_token

pytestmark = pytest.mark.django_db


def client_for(user=None, token: str | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token = access_token(user)
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def host_client(host):
    return client_for(host)


@pytest.fixture
def other(make_user):
    return make_user("other")


def test_create_list_and_read(host_client, host, other):
    reply = host_client.post(
        "/api/sessions/", {"title": "All hands", "moderated": True}, format="json"
    )
    assert reply.status_code == 201
    body = reply.json()
    assert len(body["code"]) == 8
    assert body["title"] == "All hands" and body["status"] == "open"
    assert body["moderated"] is True and body["host_id"] == host.pk
    assert body["last_seq"] == 0 and body["closed_at"] is None
    assert body["created_at"].endswith("Z")
    assert body["ws_path"] == f"/ws/sessions/{body['code']}/"
    assert body["page_url"] == f"/sessions/{body['code']}/"
    assert Participant.objects.get(session__code=body["code"]).role == "host"
    listed = host_client.get("/api/sessions/").json()
    assert [s["code"] for s in listed] == [body["code"]]
    assert client_for(other).get("/api/sessions/").json() == []
    detail = client_for(other).get(f"/api/sessions/{body['code'].lower()}/")
    assert detail.status_code == 200 and detail.json()["code"] == body["code"]


@pytest.mark.parametrize(
    "data", [{}, {"title": ""}, {"title": "  "}, {"title": "x" * 201}]
)
def test_create_refuses_bad_titles(host_client, data):
    reply = host_client.post("/api/sessions/", data, format="json")
    assert reply.status_code == 400
    assert "title" in reply.json()


def test_anonymous_and_guests_cannot_create_or_list(session):
    assert APIClient().post("/api/sessions/", {"title": "x"}).status_code == 401
    _, token = services.participant_guest_join(session=session, nickname="g")
    assert client_for(token=token).get("/api/sessions/").status_code == 403


def test_read_permissions(session, other):
    url = f"/api/sessions/{session.code}/"
    assert APIClient().get(url).status_code == 401
    _, token = services.participant_guest_join(session=session, nickname="g")
    assert client_for(token=token).get(url).status_code == 200
    foreign = services.session_create(host=other, title="elsewhere")
    _, foreign_token = services.participant_guest_join(session=foreign, nickname="f")
    assert client_for(token=foreign_token).get(url).status_code == 403
    assert client_for(token="rt1.forged").get(url).status_code == 401
    camera = scoped_token_issue({"kind": "camera"}, ttl=60)
    assert client_for(token=camera).get(url).status_code == 401
    assert client_for(other).get("/api/sessions/ABCDEFGH/").status_code == 404
    assert client_for(other).get("/api/sessions/nope/status/").status_code == 404


def test_host_edits_others_get_403(session, host_client, other):
    url = f"/api/sessions/{session.code}/"
    assert (
        client_for(other).patch(url, {"title": "mine"}, format="json").status_code
        == 403
    )
    _, token = services.participant_guest_join(session=session, nickname="g")
    assert (
        client_for(token=token).patch(url, {"title": "x"}, format="json").status_code
        == 403
    )
    assert client_for(other).delete(url).status_code == 403
    reply = host_client.patch(url, {"title": "New", "moderated": True}, format="json")
    assert reply.status_code == 200
    assert reply.json()["title"] == "New" and reply.json()["moderated"] is True
    assert host_client.patch(url, {"status": "gone"}, format="json").status_code == 400
    assert host_client.patch(url, {"title": " "}, format="json").status_code == 400
    closed = host_client.patch(url, {"status": "closed"}, format="json").json()
    assert closed["status"] == "closed" and closed["closed_at"].endswith("Z")
    again = host_client.patch(url, {"status": "closed"}, format="json")
    assert again.status_code == 200  # idempotent
    reopened = host_client.patch(url, {"status": "open"}, format="json").json()
    assert reopened["status"] == "open" and reopened["closed_at"] is None
    assert host_client.delete(url).status_code == 204
    assert host_client.get(url).status_code == 404


def test_guest_join(session):
    reply = APIClient().post(
        f"/api/sessions/{session.code.lower()}/join/", {"nickname": " Guest  One "}
    )
    assert reply.status_code == 201
    body = reply.json()
    assert set(body) == {
        "participant_id",
        "token",
        "nickname",
        "role",
        "session_code",
        "expires_in",
    }
    assert body["nickname"] == "Guest One" and body["role"] == "guest"
    assert body["session_code"] == session.code and body["token"].startswith("rt1.")
    assert body["expires_in"] == services.guest_token_ttl()
    assert Participant.objects.get(pk=body["participant_id"]).session == session


def test_join_errors(session):
    client = APIClient()
    assert (
        client.post("/api/sessions/ABCDEFGH/join/", {"nickname": "x"}).status_code
        == 404
    )
    reply = client.post(f"/api/sessions/{session.code}/join/", {"nickname": "   "})
    assert reply.status_code == 400 and "nickname" in reply.json()
    reply = client.post(f"/api/sessions/{session.code}/join/", {"nickname": "x" * 41})
    assert reply.status_code == 400
    services.session_close(session_id=session.pk)
    reply = client.post(f"/api/sessions/{session.code}/join/", {"nickname": "late"})
    assert reply.status_code == 403 and "closed" in reply.json()["detail"]


def test_join_is_throttled_so_codes_are_slow_to_guess(session, settings):
    """Misses (unknown or closed codes) from one address are what is counted; past
    the budget every join from it is refused, a known code's too (no oracle)."""
    allowed = settings.SESSION_JOIN_MISS_LIMIT = 5
    client = APIClient()
    for _ in range(allowed):
        assert (
            client.post("/api/sessions/ABCDEFGH/join/", {"nickname": "g"}).status_code
            == 404
        )
    reply = client.post("/api/sessions/ABCDEFGH/join/", {"nickname": "g"})
    assert reply.status_code == 429 and int(reply["Retry-After"]) >= 1
    reply = client.post(f"/api/sessions/{session.code}/join/", {"nickname": "g"})
    assert reply.status_code == 429
    # Another address is not held back by it.
    other = client.post(
        f"/api/sessions/{session.code}/join/",
        {"nickname": "g"},
        REMOTE_ADDR="192.0.2.9",
    )
    assert other.status_code == 201


def test_status_shape(session, host_client):
    reply = host_client.get(f"/api/sessions/{session.code}/status/")
    assert reply.status_code == 200
    assert reply.json() == {
        "session_code": session.code,
        "status": "open",
        "online_participants": [],
        "online_count": 0,
        "online_connections": 0,
        "total_participants": 1,
        "last_seq": 0,
    }


def test_message_history_pages_by_seq(session, host):
    guest, token = services.participant_guest_join(session=session, nickname="g")
    for i in range(5):
        services.message_post(session_id=session.pk, participant=guest, content=f"m{i}")
    question, _ = services.message_post(
        session_id=session.pk, participant=guest, content="q?", kind="question"
    )
    host_row = session.participants.get(role="host")
    services.message_hide(session_id=session.pk, by=host_row, message_id=question.pk)
    client = client_for(token=token)
    url = f"/api/sessions/{session.code}/messages/"
    first = client.get(url, {"limit": 2}).json()
    assert [m["seq"] for m in first["results"]] == [1, 2]
    assert first["last_seq"] == 6
    assert "after=2" in first["next"] and "limit=2" in first["next"]
    second = client.get(first["next"]).json()
    assert [m["seq"] for m in second["results"]] == [3, 4]
    rest = client.get(url, {"after": 4}).json()
    assert [m["seq"] for m in rest["results"]] == [5, 6] and rest["next"] is None
    chat, hidden = rest["results"]
    assert chat == {
        "seq": 5,
        "message_id": chat["message_id"],
        "kind": "chat",
        "participant_id": guest.pk,
        "nickname": "g",
        "content": "m4",
        "created_at": chat["created_at"],
        "client_id": None,
        "upvotes": None,
        "answered": None,
        "hidden": False,
    }
    assert hidden["kind"] == "question" and hidden["hidden"] is True
    assert hidden["content"] == "" and hidden["upvotes"] == 0
    for bad in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "501"}):
        reply = client.get(url, bad)
        assert reply.status_code == 400, bad
    assert client.get(url, {"after": ""}).status_code == 200


def test_openapi_schema_builds(host_client):
    reply = host_client.get("/api/schema/")
    assert reply.status_code == 200
    text = reply.content.decode()
    for path in ("/api/sessions/{code}/join/", "/api/sessions/{code}/messages/"):
        assert path in text


def test_pages(client, session):
    reply = client.get(f"/sessions/{session.code}/")
    assert reply.status_code == 200
    html = reply.content.decode()
    assert f'data-code="{session.code}"' in html and "session-room.js" in html
    assert 'type="module"' in html and 'data-signed-in="0"' in html
    assert "csrftoken" in reply.cookies
    redirect = client.get(f"/sessions/{session.code.lower()}/")
    assert redirect.status_code == 302 and redirect.url == f"/sessions/{session.code}/"
    assert client.get("/sessions/ABCDEFGH/").status_code == 404
    index = client.get("/sessions/")
    assert index.status_code == 200 and b"join-code" in index.content


def test_index_offers_signed_in_users_to_open_a_session(client, host):
    client.force_login(host)
    assert b"create-form" in client.get("/sessions/").content


def test_a_forged_forwarded_for_does_not_reset_the_join_throttle(session, settings):
    allowed = settings.SESSION_JOIN_MISS_LIMIT = 5
    client = APIClient()
    for i in range(allowed):
        client.post(
            "/api/sessions/ABCDEFGH/join/",
            {"nickname": "g"},
            HTTP_X_FORWARDED_FOR=f"198.51.100.{i}",
        )
    reply = client.post(
        f"/api/sessions/{session.code}/join/",
        {"nickname": "g"},
        HTTP_X_FORWARDED_FOR="203.0.113.77",
    )
    assert reply.status_code == 429


def test_a_lecture_hall_behind_one_address_all_get_in(session):
    """500 guests on one venue's Wi-Fi (one public address) join within a minute."""
    client = APIClient()
    before = session.participants.count()  # the host
    for i in range(500):
        reply = client.post(
            f"/api/sessions/{session.code}/join/", {"nickname": f"g{i}"}
        )
        assert reply.status_code == 201, (i, reply.json())
    assert session.participants.count() == before + 500


def test_fifty_unknown_codes_from_one_address_are_throttled(session):
    client = APIClient()
    answers = [
        client.post(f"/api/sessions/ZZZZZZ{i:02d}/join/", {"nickname": "g"}).status_code
        for i in range(50)
    ]
    assert answers[:30] == [404] * 30 and set(answers[30:]) == {429}


def test_a_closed_code_is_a_miss_and_a_session_has_a_join_budget(session, settings):
    settings.SESSION_JOIN_MISS_LIMIT = 1
    services.session_close(session_id=session.pk)
    client = APIClient()
    assert (
        client.post(
            f"/api/sessions/{session.code}/join/", {"nickname": "g"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/sessions/{session.code}/join/", {"nickname": "g"}
        ).status_code
        == 429
    )
    settings.SESSION_JOIN_LIMIT = 2
    fresh = services.session_create(host=session.host, title="small door")
    other = APIClient(REMOTE_ADDR="192.0.2.10")
    codes = [
        other.post(f"/api/sessions/{fresh.code}/join/", {"nickname": "g"}).status_code
        for _ in range(3)
    ]
    assert codes == [201, 201, 429]
