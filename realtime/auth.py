"""Socket authentication (docs/protocol.md §3): who is on the other end.

The middleware never refuses a handshake: it records an ``AuthResult`` in the scope
and the consumer accepts, then closes with 4008 (no credential) or 4001 (invalid), so
that browsers see the code instead of a bare HTTP 403. One credential is used, in a
fixed order: ``Authorization: Bearer`` header, then ``?ticket=``, then ``?token=``.
Tokens are never logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from realtime.tokens import (
    MAX_TOKEN_LENGTH,
    SCOPED_PREFIX,
    scoped_token_verify,
    ticket_redeem,
)

logger = logging.getLogger("realtime.auth")

Status = Literal["ok", "missing", "invalid"]


@dataclass(frozen=True)
class AuthResult:
    """What the handshake established about the peer."""

    status: Status
    user: Any = field(default_factory=AnonymousUser)
    method: str | None = None  # "bearer", "ticket", "token"
    expires_at: float | None = None  # epoch seconds; the socket closes 4001 then
    claims: dict[str, Any] = field(default_factory=dict)  # scoped-token claims
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


MISSING = AuthResult("missing", reason="no credential")


def _invalid(method: str, reason: str) -> AuthResult:
    return AuthResult("invalid", method=method, reason=reason)


def extract_credential(scope: dict) -> tuple[str, str] | None:
    """``(method, raw)`` for the one credential that counts, or ``None``."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin1").strip()
            scheme, _, raw = text.partition(" ")
            if scheme.lower() == "bearer":
                return "bearer", raw.strip()
            return "bearer", ""  # a malformed header is an invalid credential
    # keep_blank_values: "?token=" is an (invalid) empty credential, not a missing one
    query = parse_qs(
        scope.get("query_string", b"").decode("latin1"), keep_blank_values=True
    )
    for method in ("ticket", "token"):
        if method in query:
            return method, query[method][0]
    return None


def _validate_jwt(raw: str, method: str) -> AuthResult:
    """simplejwt's checks: signature, expiry, token type, active user, revocation."""
    authenticator = JWTAuthentication()
    try:
        token = authenticator.get_validated_token(raw)
        user = authenticator.get_user(token)
    except (InvalidToken, TokenError, AuthenticationFailed) as exc:
        return _invalid(method, type(exc).__name__)
    return AuthResult("ok", user=user, method=method, expires_at=float(token["exp"]))


def _user_for_ticket(claims: dict) -> AuthResult:
    user = get_user_model().objects.filter(pk=claims.get("user_id")).first()
    if user is None or not user.is_active:
        return _invalid("ticket", "user gone or inactive")
    return AuthResult("ok", user=user, method="ticket", expires_at=claims.get("exp"))


def _scoped(raw: str, method: str) -> AuthResult:
    claims = scoped_token_verify(raw)
    if claims is None:
        return _invalid(method, "bad scoped token")
    return AuthResult("ok", method=method, expires_at=claims["exp"], claims=claims)


def authenticate_sync(scope: dict) -> AuthResult:
    """Resolve the scope's credential (runs in the database thread)."""
    found = extract_credential(scope)
    if found is None:
        return MISSING
    method, raw = found
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return _invalid(method, "empty or oversized credential")
    if method == "ticket":
        claims = ticket_redeem(raw)
        if claims is None:
            return _invalid("ticket", "unknown, expired or used ticket")
        return _user_for_ticket(claims)
    if raw.startswith(SCOPED_PREFIX):
        return _scoped(raw, method)
    return _validate_jwt(raw, method)


def validate_refresh_token(raw: str) -> AuthResult:
    """For ``auth.refresh``: the same checks as at connect (JWT or scoped token)."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return _invalid("refresh", "empty or oversized credential")
    if raw.startswith(SCOPED_PREFIX):
        return _scoped(raw, "refresh")
    return _validate_jwt(raw, "refresh")


class RealtimeAuthMiddleware(BaseMiddleware):
    """Puts ``scope["auth"]`` (an ``AuthResult``) and ``scope["user"]`` in the scope.

    ``own_credential_paths`` are regexes on ``scope["path"]`` of sockets whose
    consumer checks a credential of its own (a camera's publish token): there the
    middleware neither validates nor logs it, and hands it over as
    ``scope["credential"]``. The composition root (``config.routing``) declares them.
    """

    def __init__(self, inner, *, own_credential_paths: Iterable[str] = ()) -> None:
        super().__init__(inner)
        self.own_credential_paths = [re.compile(p) for p in own_credential_paths]

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        path = scope.get("path", "")
        if scope.get("type") == "websocket" and any(
            pattern.match(path) for pattern in self.own_credential_paths
        ):
            scope["credential"] = extract_credential(scope)
            scope["auth"] = MISSING
            scope["user"] = AnonymousUser()
        elif scope.get("type") == "websocket":
            result = await database_sync_to_async(authenticate_sync)(scope)
            if result.status == "invalid":
                logger.info(
                    "socket credential refused: method=%s reason=%s path=%s",
                    result.method,
                    result.reason,
                    scope.get("path"),
                )
            scope["auth"] = result
            scope["user"] = result.user
        # Copied above already: BaseMiddleware.__call__ would copy it again and keep a
        # coroutine frame of its own, per socket, for the socket's lifetime (~0.8 KB).
        return await self.inner(scope, receive, send)
