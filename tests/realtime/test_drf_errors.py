"""The REST edge of domain errors: realtime.drf's exception handler."""

from __future__ import annotations

from json import loads

import pytest
from django.db import DatabaseError, InterfaceError, OperationalError
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from realtime.drf import exception_handler
from realtime.errors import (
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    PermissionDenied,
    Throttled,
    Unavailable,
    realtime_error,
)
from sessions_app import services


def json(response: Response) -> object:
    return loads(JSONRenderer().render(response.data))


def handled(exc: Exception) -> Response:
    response = exception_handler(exc, {})
    assert response is not None
    return response


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (Invalid("must not be blank"), 400, {"detail": "must not be blank"}),
        (NotFound("no question 7"), 404, {"detail": "no question 7"}),
        (PermissionDenied(), 403, {"detail": "not allowed"}),
        (Conflict("already removed"), 409, {"detail": "already removed"}),
        (services.SessionClosed(), 403, {"detail": "the session is closed"}),
    ],
)
def test_a_domain_error_becomes_its_status_and_detail(error, status, body):
    response = handled(error)
    assert response.status_code == status
    assert response.data == body
    assert "Retry-After" not in response.headers


def test_a_field_is_named_as_a_validation_error_names_it():
    response = handled(Invalid("at most 40 characters", field="nickname"))
    drf = handled(exceptions.ValidationError({"nickname": ["at most 40 characters"]}))
    assert response.status_code == drf.status_code == 400
    assert json(response) == json(drf) == {"nickname": ["at most 40 characters"]}


@pytest.mark.parametrize(
    ("error", "status", "header"),
    [
        (Throttled(retry_after=2.2), 429, "3"),  # rounded up, never early
        (Throttled(retry_after=5), 429, "5"),
        (Unavailable(), 503, "1"),  # its default: retry in a second
        (Unavailable(retry_after=30), 503, "30"),
    ],
)
def test_retry_after_becomes_the_header(error, status, header):
    response = handled(error)
    assert response.status_code == status
    assert response.headers["Retry-After"] == header
    assert response.data == {"detail": error.detail}


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("connection refused"),
        InterfaceError("connection already closed"),
    ],
)
def test_an_unreachable_database_is_retryable_not_a_bug(error):
    response = handled(error)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.data == {"detail": Unavailable.default_detail}
    assert exception_handler(DatabaseError("a bad query"), {}) is None  # still 500


def test_retry_after_is_left_out_where_clients_do_not_read_it():
    assert "Retry-After" not in handled(Conflict(retry_after=3)).headers
    assert "Retry-After" not in handled(Throttled()).headers  # none given


def test_everything_else_is_drfs():
    response = handled(exceptions.NotFound("no session with this code"))
    assert (response.status_code, response.data) == (
        404,
        {"detail": "no session with this code"},
    )
    assert handled(exceptions.Throttled(wait=4)).headers["Retry-After"] == "4"
    assert exception_handler(ValueError("a bug"), {}) is None  # DRF re-raises: 500


class Refuses(APIView):
    """Raises whatever the test hands it, as a service called by a view would."""

    permission_classes: list = []
    authentication_classes: list = []
    error: DomainError = Invalid()

    def get(self, request):
        raise self.error


def test_the_settings_name_the_handler_for_every_view():
    view = Refuses.as_view(error=Throttled("too many joins", retry_after=1.5))
    response = view(APIRequestFactory().get("/"))
    assert response.status_code == 429
    assert response["Retry-After"] == "2"
    assert response.data == {"detail": "too many joins"}


def test_one_refusal_said_at_both_edges():
    with pytest.raises(Invalid) as info:
        services.content_clean(" \n ")
    response = handled(info.value)
    assert response.data == {"content": ["must not be blank"]}
    wire = realtime_error(info.value).payload()
    assert wire["code"] == "INVALID_MESSAGE"
    assert wire["message"] == "payload.content: must not be blank"


@pytest.mark.django_db
def test_the_join_api_answers_the_services_refusals(user):
    session = services.session_create(host=user, title="Town hall")
    url = f"/api/sessions/{session.code}/join/"
    reply = APIClient().post(url, {"nickname": "bell\x07"})
    assert reply.status_code == 400
    assert reply.json() == {"nickname": ["must not contain control characters"]}
    services.session_close(session_id=session.pk)
    reply = APIClient().post(url, {"nickname": "late"})
    assert reply.status_code == 403
    assert reply.json() == {"detail": "the session is closed"}
