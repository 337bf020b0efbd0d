"""Credentials other than JWTs: one-time socket tickets and scoped tokens.

Tickets (docs/protocol.md §3) live in the shared cache for ``TICKET_TTL`` seconds and
are consumed by an atomic delete, so two servers racing for one ticket cannot both
win. Scoped tokens are signed claims (a live-session guest's participant token, say)
verified without a database query.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.core import signing
from django.core.cache import cache

from realtime.conf import realtime_settings

SCOPED_PREFIX = "rt1."
MAX_TOKEN_LENGTH = 4096  # any credential longer than this is refused unread
_SALT = "realtime.scoped-token"


def ticket_issue(*, user_id: int, expires_at: float | None) -> str:
    """A fresh ticket for ``user_id``; ``expires_at`` is the JWT's own expiry."""
    ticket = secrets.token_urlsafe(24)
    cache.set(
        f"ticket:{ticket}",
        {"user_id": user_id, "exp": expires_at},
        timeout=realtime_settings.TICKET_TTL,
    )
    return ticket


def ticket_redeem(ticket: str) -> dict[str, Any] | None:
    """The ticket's claims, once; ``None`` if unknown, expired or already used."""
    if not ticket or len(ticket) > 64:
        return None
    key = f"ticket:{ticket}"
    claims = cache.get(key)
    # Only the caller whose delete removed the key may use it (atomic in every backend).
    if claims is None or not cache.delete(key):
        return None
    return claims


def scoped_token_issue(claims: dict[str, Any], *, ttl: float) -> str:
    """Sign ``claims`` (JSON-serialisable) into a token valid for ``ttl`` seconds."""
    body = {**claims, "exp": int(time.time() + ttl)}
    return SCOPED_PREFIX + signing.dumps(body, salt=_SALT, compress=True)


def scoped_token_verify(token: str) -> dict[str, Any] | None:
    """The claims of a valid, unexpired scoped token, else ``None``."""
    if not token.startswith(SCOPED_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        claims = signing.loads(token[len(SCOPED_PREFIX) :], salt=_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(claims, dict) or claims.get("exp", 0) < time.time():
        return None
    return claims
