"""The operators' live page in the admin: its JSON, its page, the endpoints' sections.

The toolkit (``realtime.live``) knows processes and sockets; the rows of live
sessions, conversations and camera streams need the endpoints' models, so they are
registered here, in the layer that wires the endpoints together.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from camera.live import stream_live_status
from camera.models import Stream
from realtime.live import live_snapshot, register_section
from realtime.presence import ALL, room_members
from sessions_app.messenger.models import ConversationMember
from sessions_app.models import Session
from sessions_app.selectors import session_online_count

# A page an operator reads at a glance: the busiest rows, not every row.
MAX_ROWS = 50


def _room_ids(kind: str) -> dict[str, int]:
    """``{id: sockets}`` of the rooms ``<kind>.<id>`` that someone is in."""
    prefix = kind + "."
    counts: dict[str, int] = {}
    for info in room_members(ALL).values():
        for room in info.get("rooms", ()):
            if room.startswith(prefix):
                ident = room[len(prefix) :]
                counts[ident] = counts.get(ident, 0) + 1
    return counts


def session_rows() -> list[dict[str, Any]]:
    """Live sessions someone is connected to: participants online, sockets."""
    sockets = {int(i): n for i, n in _room_ids("session").items() if i.isdigit()}
    rows = [
        {
            "code": session.code,
            "title": session.title,
            "status": session.status,
            "online": session_online_count(session_id=session.pk),
            "sockets": sockets[session.pk],
        }
        for session in Session.objects.filter(pk__in=sockets).only(
            "code", "title", "status"
        )
    ]
    rows.sort(key=lambda row: (-row["online"], row["code"]))
    return rows[:MAX_ROWS]


def conversation_rows() -> list[dict[str, Any]]:
    """Conversations with members online on the messenger."""
    online = {int(i) for i in _room_ids("inbox") if i.isdigit()}
    rows: dict[str, dict[str, Any]] = {}
    members = ConversationMember.objects.filter(user_id__in=online).select_related(
        "conversation"
    )
    for member in members:
        conversation = member.conversation
        row = rows.setdefault(
            str(conversation.pk),
            {
                "id": str(conversation.pk),
                "kind": conversation.kind,
                "title": conversation.title,
                "online": 0,
            },
        )
        row["online"] += 1
    ordered = sorted(rows.values(), key=lambda row: (-row["online"], row["id"]))
    return ordered[:MAX_ROWS]


def stream_rows() -> list[dict[str, Any]]:
    """Every camera stream: live or not, measured and configured fps, viewers."""
    rows = []
    for stream in Stream.objects.only("slug", "title", "fps")[:MAX_ROWS]:
        status = stream_live_status(slug=stream.slug)
        rows.append(
            {
                "slug": stream.slug,
                "title": stream.title,
                "live": status["live"],
                "fps": status["fps"],
                "target_fps": stream.fps,
                "viewers": status["viewers"],
            }
        )
    return rows


register_section("sessions", title="Live sessions", rows=session_rows)
register_section("conversations", title="Conversations", rows=conversation_rows)
register_section("streams", title="Camera streams", rows=stream_rows)


# ---------------------------------------------------------------------- views
def live_json(request: HttpRequest) -> JsonResponse:
    """The live view as JSON, for the page's refresh; staff only (403, no redirect:
    the page's fetch wants an answer, not the login form)."""
    user = getattr(request, "user", None)
    if not (user and user.is_active and user.is_staff):
        return JsonResponse({"detail": "staff only"}, status=403)
    return JsonResponse(live_snapshot())


def live_page(request: HttpRequest) -> HttpResponse:
    """The page; the admin's own login redirect for anyone not staff."""
    context = {
        **admin.site.each_context(request),
        "title": "Realtime: live",
        "snapshot": live_snapshot(),
    }
    return TemplateResponse(request, "admin/realtime/live.html", context)


live_page_view = admin.site.admin_view(live_page)
