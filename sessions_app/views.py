"""Pages: join a session by code, and the session room."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie

from sessions_app.selectors import session_get


@ensure_csrf_cookie
def session_index(request: HttpRequest) -> HttpResponse:
    """Type a code to join; signed-in users may also open a new session."""
    return render(request, "sessions/index.html")


@ensure_csrf_cookie  # a signed-in user's page fetches socket tickets with it
def session_room(request: HttpRequest, code: str) -> HttpResponse:
    session = session_get(code=code)
    if session is None:
        raise Http404("no session with this code")
    if code != session.code:  # typed in lower case or with a dash
        return redirect("session-room", code=session.code)
    return render(request, "sessions/room.html", {"session": session})
