"""Socket authentication (docs/protocol.md §3): who is on the other end.

The socket entry (``socket_identity``) never refuses a handshake: it records an
``AuthResult`` in the scope and the consumer accepts, then closes with 4008 (no
credential) or 4001 (invalid), so that browsers see the code instead of a bare HTTP
403. One credential is used, in a fixed order: ``Authorization: Bearer`` header, then
``?ticket=``, then ``?token=``. Tokens are never logged.

On the event loop, without a trip to the database thread, for the common cases: a
scoped token and a JWT are checked by signature and expiry (CPU only), and a JWT's
user is read from the process's user cache (``realtime.usercache``); a miss, and a
ticket (redeemed in the shared cache, its user read), take one trip.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from channels.middleware import BaseMiddleware
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import BlacklistMixin, Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from realtime.dbthread import to_database_thread
from realtime.tokens import (
    MAX_TOKEN_LENGTH,
    SCOPED_PREFIX,
    scoped_token_verify,
    ticket_redeem,
)
from realtime.usercache import cached_user, load_user

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


def _jwt_token(raw: str, method: str) -> Token | AuthResult:
    """simplejwt's token checks: signature, expiry, token type (CPU only, unless a
    token class checks a blacklist: ``_tokens_read_database``)."""
    try:
        return JWTAuthentication().get_validated_token(raw)
    except (InvalidToken, TokenError) as exc:
        return _invalid(method, type(exc).__name__)


def _tokens_read_database() -> bool:
    """Whether a token class verifies against the blacklist (a database read)."""
    return any(issubclass(c, BlacklistMixin) for c in jwt_settings.AUTH_TOKEN_CLASSES)


def _jwt_checked(raw: str, method: str) -> tuple[Token, Any] | AuthResult:
    """``(token, user id)`` of a valid token, else the invalid result."""
    token = _jwt_token(raw, method)
    if isinstance(token, AuthResult):
        return token
    user_id = token.get(jwt_settings.USER_ID_CLAIM)
    if user_id is None:
        return _invalid(method, "InvalidToken")
    return token, user_id


def _jwt_result(token: Token, user: Any, method: str) -> AuthResult:
    """simplejwt's ``get_user`` checks on the user read: exists, active, and the
    token was issued for its current password (``CHECK_REVOKE_TOKEN``)."""
    if user is None:
        return _invalid(method, "user not found")
    if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
        return _invalid(method, "user inactive")
    if jwt_settings.CHECK_REVOKE_TOKEN and token.get(
        jwt_settings.REVOKE_TOKEN_CLAIM
    ) != get_md5_hash_password(user.password):
        return _invalid(method, "password changed")
    return AuthResult("ok", user=user, method=method, expires_at=float(token["exp"]))


def _validate_jwt(raw: str, method: str) -> AuthResult:
    """A JWT's checks in the database thread (a user not cached is read)."""
    checked = _jwt_checked(raw, method)
    if isinstance(checked, AuthResult):
        return checked
    token, user_id = checked
    user = cached_user(user_id)
    if user is None:
        user = load_user(user_id)
    return _jwt_result(token, user, method)


async def _validate_jwt_async(raw: str, method: str) -> AuthResult:
    """A JWT's checks on the event loop; only a user not cached costs a trip."""
    if _tokens_read_database():
        return await to_database_thread(_validate_jwt)(raw, method)
    checked = _jwt_checked(raw, method)
    if isinstance(checked, AuthResult):
        return checked
    token, user_id = checked
    user = cached_user(user_id)
    if user is None:
        user = await to_database_thread(load_user)(user_id)
    return _jwt_result(token, user, method)


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


def _credential(scope: dict) -> tuple[str, str] | AuthResult:
    """The credential to check, or the result already known (missing, malformed)."""
    found = extract_credential(scope)
    if found is None:
        return MISSING
    method, raw = found
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return _invalid(method, "empty or oversized credential")
    return method, raw


def _ticket(raw: str) -> AuthResult:
    claims = ticket_redeem(raw)
    if claims is None:
        return _invalid("ticket", "unknown, expired or used ticket")
    return _user_for_ticket(claims)


def authenticate_sync(scope: dict) -> AuthResult:
    """Resolve the scope's credential (in the database thread)."""
    found = _credential(scope)
    if isinstance(found, AuthResult):
        return found
    method, raw = found
    if method == "ticket":
        return _ticket(raw)
    if raw.startswith(SCOPED_PREFIX):
        return _scoped(raw, method)
    return _validate_jwt(raw, method)


async def authenticate(scope: dict) -> AuthResult:
    """Resolve the scope's credential on the event loop (``authenticate_sync``'s
    checks); a ticket and a user not cached take a trip to the database thread."""
    found = _credential(scope)
    if isinstance(found, AuthResult):
        return found
    method, raw = found
    if method == "ticket":
        return await to_database_thread(_ticket)(raw)
    if raw.startswith(SCOPED_PREFIX):
        return _scoped(raw, method)
    return await _validate_jwt_async(raw, method)


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
        if scope.get("type") == "websocket":
            scope.update(await socket_identity(scope, self.own_credential_paths))
        # Copied above already: BaseMiddleware.__call__ would copy it again and keep a
        # coroutine frame of its own, per socket, for the socket's lifetime (~0.8 KB).
        return await self.inner(scope, receive, send)


async def socket_identity(
    scope: dict, own_credential_paths: Iterable[re.Pattern] = ()
) -> dict[str, Any]:
    """What a socket's scope gets: ``auth`` (an ``AuthResult``) and ``user``, and on a
    path of ``own_credential_paths`` the unchecked ``credential`` instead."""
    path = scope.get("path", "")
    if any(pattern.match(path) for pattern in own_credential_paths):
        return {
            "credential": extract_credential(scope),
            "auth": MISSING,
            "user": AnonymousUser(),
        }
    result = await authenticate(scope)
    if result.status == "invalid":
        logger.info(
            "socket credential refused: method=%s reason=%s path=%s",
            result.method,
            result.reason,
            path,
        )
    return {"auth": result, "user": result.user}
