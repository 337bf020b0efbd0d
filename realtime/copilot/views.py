"""The copilot console page: a browser client of ``/ws/copilot/``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


@ensure_csrf_cookie  # the page POSTs for a socket ticket with the session cookie
def copilot_page(request: HttpRequest) -> HttpResponse:
    """Signed-in users connect with their session; others paste an access token."""
    return render(request, "copilot.html", {"signed_in": request.user.is_authenticated})
