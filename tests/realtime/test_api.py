"""REST side: JWT pair, tickets, stats, schema, readiness, metrics."""

from __future__ import annotations

import threading
import time

import pytest
from rest_framework.test import APIClient

from tests.conftest import access_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def bearer(api: APIClient, user) -> APIClient:
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return api


def test_token_pair_and_refresh(api, user):
    reply = api.post(
        "/api/auth/token/",
        {"username": "alice", "password": "pw-Secret-123"},
        format="json",
    )
    assert reply.status_code == 200
    pair = reply.json()
    assert set(pair) == {"access", "refresh"}
    refreshed = api.post(
        "/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200 and "access" in refreshed.json()
    # Rotated: the old refresh token is blacklisted.
    again = api.post(
        "/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json"
    )
    assert again.status_code == 401
    bad = api.post(
        "/api/auth/token/", {"username": "alice", "password": "nope"}, format="json"
    )
    assert bad.status_code == 401


def test_ticket_needs_authentication(api, user):
    assert api.post("/api/realtime/tickets/").status_code == 401
    reply = bearer(api, user).post("/api/realtime/tickets/")
    assert reply.status_code == 201
    body = reply.json()
    assert body["expires_in"] == 30 and len(body["ticket"]) >= 32


def test_ticket_with_session_login(api, user):
    api.force_login(user)
    assert api.post("/api/realtime/tickets/").status_code == 201


def test_stats_are_staff_only(api, user, staff):
    assert bearer(api, user).get("/api/realtime/stats/").status_code == 403
    reply = bearer(APIClient(), staff).get("/api/realtime/stats/")
    assert reply.status_code == 200
    assert set(reply.json()) == {
        "online_users",
        "total_connections",
        "active_rooms",
        "by_endpoint",
    }


def test_schema_and_docs(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/realtime/tickets/" in schema.content
    docs = api.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_readyz(api):
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "database_thread": "ok",
        "cache": "ok",
        "channel_layer": "ok",
    }


def test_readyz_fails_while_a_database_call_is_stuck(api, settings):
    """Every socket's database calls wait on the one thread: a call that has run
    past REALTIME_DB_CALL_STUCK takes the process out of the balancer until it ends."""
    from realtime.dbthread import database_thread

    settings.REALTIME_DB_CALL_STUCK = 0.05
    started, release = threading.Event(), threading.Event()
    held = database_thread.submit(lambda: (started.set(), release.wait(10)))
    try:
        assert started.wait(5)
        deadline = time.monotonic() + 5
        while database_thread.busy_for() <= 0.05 and time.monotonic() < deadline:
            release.wait(0.01)
        stuck = api.get("/readyz")
        assert stuck.status_code == 503
        assert stuck.json()["checks"]["database_thread"] == "error: DatabaseThreadStuck"
    finally:
        release.set()
    held.result(5)
    deadline = time.monotonic() + 5  # the thread marks itself idle after answering
    while database_thread.busy_for() and time.monotonic() < deadline:
        release.wait(0.01)
    assert database_thread.busy_for() == 0.0
    assert api.get("/readyz").status_code == 200


def test_readyz_reports_a_dead_dependency(api, monkeypatch):
    import realtime.api as api_module

    def broken():
        raise ConnectionError("down")

    monkeypatch.setattr(api_module, "_check_database", broken)
    ready = api.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "error: ConnectionError"


def test_metrics_from_loopback_or_staff(api, staff):
    reply = api.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert reply.status_code == 200
    assert b"# TYPE realtime_connections_open gauge" in reply.content
    assert api.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    api.force_login(staff)
    assert api.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_home_page_and_static(client):
    home = client.get("/")
    assert home.status_code == 200 and b"Django Realtime" in home.content
    js = client.get("/static/realtime/client.js")
    assert js.status_code == 200


def test_demo_setup_creates_staff_once(django_user_model):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("demo_setup", stdout=out)
    assert "password:" in out.getvalue()
    assert django_user_model.objects.filter(username="demo", is_staff=True).exists()
    out = StringIO()
    call_command("demo_setup", stdout=out)
    assert "skipped" in out.getvalue()


def test_metrics_refuse_an_unparsable_address(api):
    assert api.get("/metrics", REMOTE_ADDR="unix-socket").status_code == 403


def test_metrics_through_a_local_proxy_need_a_login(api):
    proxied = api.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    assert proxied.status_code == 403
