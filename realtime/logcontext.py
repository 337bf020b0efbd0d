"""Log context: a socket's or a request's trace id, user and endpoint on every line.

A connection binds its fields when it connects (its task's context, inherited by the
tasks it spawns); an HTTP request binds them in ``TraceMiddleware``. ``ContextFilter``
copies them onto each record, unless the call gave its own (``extra=``), so lines
logged for one socket from another socket's task (a hub delivery) can name theirs.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

FIELDS = ("trace_id", "user_id", "endpoint")
TRACE_HEADER = "X-Trace-Id"
# A caller's own request id is kept when it looks like one (a proxy's, say):
# bounded and plain, so it cannot smuggle anything into a log line.
_GOOD_TRACE = re.compile(r"[A-Za-z0-9._-]{8,64}")

_NONE: Mapping[str, Any] = {}
_fields: ContextVar[Mapping[str, Any]] = ContextVar("log_fields", default=_NONE)


def bind(**fields: Any) -> Token:
    """Add ``fields`` to the current context's; ``reset`` with the token undoes it."""
    return _fields.set({**_fields.get(), **fields})


def reset(token: Token) -> None:
    _fields.reset(token)


def clear() -> None:
    """No fields from here on in this context (a task that serves many sockets)."""
    _fields.set(_NONE)


def set_aside() -> Token:
    """No fields until ``reset`` with the token (a stretch of work for others)."""
    return _fields.set(_NONE)


def current() -> Mapping[str, Any]:
    return _fields.get()


def new_trace_id() -> str:
    return secrets.token_hex(8)


class ContextFilter(logging.Filter):
    """Puts the context's fields on each record; a callable value is asked now."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = record.__dict__
        for key, value in _fields.get().items():
            if key not in values:
                values[key] = value() if callable(value) else value
        return True


def _request_user_id(request: HttpRequest) -> Callable[[], Any]:
    """The request's user id once something has looked the user up, else None: a
    log line never costs a session or token lookup of its own."""

    def user_id() -> Any:
        user = request.__dict__.get("user")
        if isinstance(user, SimpleLazyObject):
            user = None if user._wrapped is empty else user._wrapped
        return getattr(user, "pk", None)

    return user_id


class TraceMiddleware:
    """Each HTTP request's trace id (the caller's ``X-Trace-Id`` if well formed, else
    a new one) bound for its log lines and returned in the response's header."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _bind(self, request: HttpRequest) -> tuple[str, Token]:
        given = request.headers.get(TRACE_HEADER, "")
        trace = given if _GOOD_TRACE.fullmatch(given) else new_trace_id()
        token = bind(trace_id=trace, endpoint="http", user_id=_request_user_id(request))
        return trace, token

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        trace, token = self._bind(request)
        try:
            response: HttpResponse = self.get_response(request)
        finally:
            reset(token)
        response[TRACE_HEADER] = trace
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        trace, token = self._bind(request)
        try:
            response = await self.get_response(request)
        finally:
            reset(token)
        response[TRACE_HEADER] = trace
        return response
