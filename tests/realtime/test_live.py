"""The operators' live view: process reports, sections, the admin page, the command."""

from __future__ import annotations

import asyncio
import json
from io import StringIO

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.management import call_command

from camera.models import Stream
from realtime import live, recent
from realtime.connection import connections
from realtime.presence import ALL, presence_set
from sessions_app.messenger.models import Conversation, ConversationMember
from sessions_app.models import Session
from tests.conftest import communicator, recv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def _fresh():
    recent.clear()
    yield
    recent.clear()
    connections.draining = False


async def _echo(token: str):
    comm = communicator("/ws/echo/", token=token)
    assert (await comm.connect())[0]
    assert (await recv(comm))["type"] == "echo.ready"
    return comm


def _status(*args: str) -> str:
    out = StringIO()
    call_command("realtime_status", *args, stdout=out)
    return out.getvalue()


async def test_realtime_status_counts_this_process_sockets(token):
    comms = [await _echo(token) for _ in range(3)]
    try:
        snapshot = json.loads(await sync_to_async(_status)("--json"))
        assert snapshot["total"] == 3
        assert snapshot["by_endpoint"] == {"echo": 3}
        (own,) = snapshot["processes"]
        assert own["process"] == live.process_id()
        assert own["connections"] == {"echo": 3}
        assert own["draining"] is False
        assert set(snapshot["sections"]) >= {"sessions", "conversations", "streams"}
        text = await sync_to_async(_status)()
        assert "3 sockets open" in text
        assert "echo" in text and "serving" in text
    finally:
        for comm in comms:
            await comm.disconnect()
    assert json.loads(await sync_to_async(_status)("--json"))["total"] == 0


def test_reports_of_other_processes_are_read_from_the_store(settings):
    settings.LIVE_REPORT_INTERVAL = 5
    live.get_store().set(
        live.PROCESSES,
        "other:1",
        {
            "process": "other:1",
            "server": "uvicorn",
            "draining": True,
            "connections": {"sessions": 2, "messenger": 1},
            "total": 3,
            "reported_at": 0,
            "recent": [
                {
                    "at": 5.0,
                    "kind": "close",
                    "code": 4003,
                    "endpoint": "sessions",
                    "conn": "c",
                    "reason": "no pong",
                }
            ],
        },
        15,
    )
    async_to_sync(live.areport_now)()  # this process, no sockets, from a loop
    snapshot = live.live_snapshot()
    assert snapshot["total"] == 3
    assert snapshot["by_endpoint"] == {"messenger": 1, "sessions": 2}
    names = [report["process"] for report in snapshot["processes"]]
    assert names == sorted(["other:1", live.process_id()])
    assert snapshot["recent"][0]["code"] == 4003
    assert snapshot["recent"][0]["process"] == "other:1"
    assert "recent" not in snapshot["processes"][0]
    text = _status()
    assert "draining" in text and "no pong" in text
    live.report_remove()
    assert live.process_id() not in live.get_store().members(live.PROCESSES)


def test_sections_show_sessions_conversations_and_streams(make_user):
    alice = make_user("alice")
    session = Session.objects.create(title="Standup")
    conversation = Conversation.objects.create(kind="group", title="Team")
    ConversationMember.objects.create(conversation=conversation, user=alice)
    Stream.objects.create(slug="cam-1", title="Door", fps=15)
    presence_set(
        conn_id="s1",
        entries={
            ALL: {"endpoint": "sessions", "rooms": [f"session.{session.pk}"]},
            f"session.{session.pk}": {"participant_id": 7},
        },
    )
    presence_set(
        conn_id="m1",
        entries={
            ALL: {"endpoint": "messenger", "rooms": [f"inbox.{alice.pk}"]},
            f"inbox.{alice.pk}": {"user_id": alice.pk},
        },
    )
    live.load_sections()
    sections = live.live_snapshot()["sections"]
    (row,) = sections["sessions"]["rows"]
    assert (row["title"], row["online"], row["sockets"]) == ("Standup", 1, 1)
    (row,) = sections["conversations"]["rows"]
    assert (row["title"], row["online"]) == ("Team", 1)
    (row,) = sections["streams"]["rows"]
    assert row == {
        "slug": "cam-1",
        "title": "Door",
        "live": False,
        "fps": 0.0,
        "target_fps": 15.0,
        "viewers": 0,
    }
    assert "Standup" in _status()


def test_a_failing_section_leaves_the_others(monkeypatch):
    def broken():
        raise RuntimeError("db down")

    monkeypatch.setitem(
        live._sections, "broken", live.Section("broken", "Broken", broken)
    )
    sections = live.live_snapshot()["sections"]
    assert sections["broken"] == {"title": "Broken", "rows": []}


async def test_the_reporter_reports_until_cancelled(settings, monkeypatch):
    settings.LIVE_REPORT_INTERVAL = 0.1
    calls: list[int] = []

    async def report() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("redis blip")  # logged, tried again

    monkeypatch.setattr(live, "areport_now", report)
    task = asyncio.ensure_future(live.report_forever())
    await asyncio.sleep(0.25)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 2


def test_set_server_names_the_server_in_the_report():
    live.set_server("uvicorn")
    try:
        assert live.process_report()["server"] == "uvicorn"
    finally:
        live.set_server("asgi")


# ---------------------------------------------------------------------- the page
def test_the_live_page_is_for_staff_only(client, staff, make_user):
    page, data = "/admin/realtime/live/", "/admin/realtime/live.json"
    assert client.get(page).status_code == 302
    assert client.get(data).status_code == 403
    client.force_login(make_user("bob"))
    assert client.get(page).status_code == 302  # to the admin's login
    assert client.get(data).status_code == 403
    client.force_login(staff)
    reply = client.get(page)
    assert reply.status_code == 200
    assert b'id="live-snapshot"' in reply.content
    assert b"/admin/realtime/live.json" in reply.content
    snapshot = client.get(data).json()
    assert {"total", "by_endpoint", "processes", "sections", "recent"} <= set(snapshot)
    assert b"/admin/realtime/live/" in client.get("/admin/").content  # linked
