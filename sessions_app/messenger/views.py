"""The messenger page: a signed-in user's browser client of ``/ws/messenger/``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from sessions_app.messenger.selectors import users_sharing


def contact_names(*, user: Any) -> dict[str, str]:
    """``{user id: username}`` of ``user`` and everyone sharing a conversation with
    them: the REST API lists member ids only, and a stranger's name is not shown."""
    ids = users_sharing(user_id=user.pk) | {user.pk}
    model = get_user_model()
    rows = model.objects.filter(pk__in=ids).values_list("pk", model.USERNAME_FIELD)
    return {str(pk): name for pk, name in rows}


@login_required  # sockets and REST are users only: send visitors to sign in first
@ensure_csrf_cookie  # the page POSTs for socket tickets and conversations with it
def messenger_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "messenger/index.html",
        {"user_names": contact_names(user=request.user)},
    )


@require_GET
@login_required
def messenger_names(request: HttpRequest) -> JsonResponse:
    """The page asks again when a conversation brings a member it cannot name."""
    return JsonResponse(contact_names(user=request.user))
