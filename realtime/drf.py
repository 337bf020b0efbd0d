"""The REST edge's translation of domain errors: DRF's ``EXCEPTION_HANDLER``."""

from __future__ import annotations

import math
from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, views
from rest_framework.response import Response

from realtime.errors import DomainError, Unavailable

RETRYABLE = frozenset({429, 503})  # the statuses whose Retry-After clients heed
# The database did not answer (down, restarting, cut off): the request's
# transaction was rolled back, so it is safe to retry, and no bug to report.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


class _DomainAPIException(exceptions.APIException):
    """A ``DomainError`` as DRF states it: its HTTP status, and ``{"detail": ...}``,
    or ``{field: [detail]}`` like a ``ValidationError`` when it names a field."""

    def __init__(self, exc: DomainError) -> None:
        self.status_code = exc.http_status
        detail = {exc.field: [exc.detail]} if exc.field else exc.detail
        super().__init__(detail, code=str(exc.code).lower())
        if exc.retry_after is not None and exc.http_status in RETRYABLE:
            # Whole seconds, rounded up as DRF's own Throttled does: a client told
            # "0" would retry at once and be refused again.
            self.wait = math.ceil(exc.retry_after)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's default handler, a ``DomainError`` first turned into its
    ``APIException`` (so the rollback and headers are DRF's own); an unreachable
    database is ``Unavailable`` (503, ``Retry-After``)."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        exc = Unavailable()
    if isinstance(exc, DomainError):
        exc = _DomainAPIException(exc)
    return views.exception_handler(exc, context)
