"""Domain errors: what a service refuses, said once, translated at each edge.

Services raise these (never a wire error, never a bare ``ValueError`` for bad input);
the socket edge turns one into an ``error`` envelope (``realtime_error``) and the REST
edge into a DRF response (``realtime.drf.exception_handler``). Each class names the
protocol error code and the HTTP status it becomes, like DRF's ``APIException``.
Pure: imports nothing from Django.
"""

from __future__ import annotations

from typing import ClassVar

from realtime.codes import ErrorCode, RealtimeError


class DomainError(Exception):
    """A refusal by a service. ``field`` names the input at fault, if one is."""

    code: ClassVar[ErrorCode] = ErrorCode.INVALID_MESSAGE
    http_status: ClassVar[int] = 400
    default_detail: ClassVar[str] = "invalid request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.field = field
        self.retry_after = retry_after
        super().__init__(f"{field}: {self.detail}" if field else self.detail)


class Invalid(DomainError):
    """The input breaks a rule (blank, too long, out of range)."""


class NotFound(DomainError):
    """No such thing, or not one the caller may know exists."""

    code, http_status, default_detail = ErrorCode.NOT_FOUND, 404, "not found"


class PermissionDenied(DomainError):
    """The caller may see it, but not do this to it."""

    code, http_status, default_detail = ErrorCode.FORBIDDEN, 403, "not allowed"


class Conflict(DomainError):
    """The thing is in a state that refuses this (closed, already removed)."""

    code, http_status, default_detail = ErrorCode.FORBIDDEN, 409, "conflict"


class Throttled(DomainError):
    """Too many; try again after ``retry_after`` seconds."""

    code, http_status = ErrorCode.RATE_LIMITED, 429
    default_detail = "rate limit exceeded"


class Unavailable(DomainError):
    """A dependency (database, Redis) is down for now: retryable."""

    code, http_status = ErrorCode.INTERNAL, 503
    default_detail = "temporarily unavailable, try again"

    def __init__(self, detail: str | None = None, **kwargs: object) -> None:
        kwargs.setdefault("retry_after", 1.0)
        super().__init__(detail, **kwargs)  # type: ignore[arg-type]


class _Wire(RealtimeError):
    """A domain error as the socket edge says it (its code, set per instance)."""


def realtime_error(exc: DomainError) -> RealtimeError:
    """The ``error`` envelope's error for ``exc``: the field named as the frame's
    ``payload.<field>`` (PROTOCOL §2's messages point at the frame)."""
    error = _Wire(
        f"payload.{exc.field}: {exc.detail}" if exc.field else exc.detail,
        retry_after=exc.retry_after,
    )
    error.code = exc.code
    return error
