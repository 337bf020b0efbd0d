"""Socket credentials: header, ticket, query token; simplejwt's checks; tickets."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime.auth import authenticate_sync, extract_credential, validate_refresh_token
from realtime.tokens import (
    scoped_token_issue,
    scoped_token_verify,
    ticket_issue,
    ticket_redeem,
)

pytestmark = pytest.mark.django_db


def scope(query: str = "", auth: str | None = None) -> dict:
    headers = [(b"authorization", auth.encode())] if auth is not None else []
    return {"type": "websocket", "query_string": query.encode(), "headers": headers}


def test_credential_order_is_header_then_ticket_then_token():
    both = scope("ticket=T&token=Q", auth="Bearer H")
    assert extract_credential(both) == ("bearer", "H")
    assert extract_credential(scope("token=Q&ticket=T")) == ("ticket", "T")
    assert extract_credential(scope("token=Q")) == ("token", "Q")
    assert extract_credential(scope("other=1")) is None
    assert extract_credential(scope(auth="Basic abc")) == ("bearer", "")


def test_missing(user):
    assert authenticate_sync(scope()).status == "missing"


def test_valid_access_token_in_header_and_query(user, token):
    for s in (scope(auth=f"Bearer {token}"), scope(f"token={token}")):
        result = authenticate_sync(s)
        assert result.ok and result.user == user
        assert result.expires_at == pytest.approx(AccessToken(token)["exp"])


def _forge(header: dict, payload: dict) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda user: "",
        lambda user: "garbage",
        lambda user: "x" * 10_000,
        lambda user: str(RefreshToken.for_user(user)),  # refresh used as access
        lambda user: _forge(
            {"alg": "none", "typ": "JWT"},
            {"user_id": str(user.pk), "token_type": "access", "exp": 2**31},
        ),
        lambda user: str(AccessToken.for_user(user))[:-3] + "abc",  # tampered
    ],
    ids=["empty", "garbage", "10KB", "refresh", "alg-none", "tampered"],
)
def test_invalid_tokens(user, make_bad):
    result = authenticate_sync(scope(f"token={make_bad(user)}"))
    assert result.status in {"invalid", "missing"}
    assert not result.ok


def test_wrong_signing_key(user):
    import jwt

    genuine = AccessToken.for_user(user)
    forged = jwt.encode(dict(genuine.payload), "another-key" * 4, algorithm="HS256")
    assert authenticate_sync(scope(f"token={forged}")).status == "invalid"


def test_expired_token(user):
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=timedelta(seconds=-1))
    assert authenticate_sync(scope(f"token={expired}")).status == "invalid"


def test_inactive_user(user, token):
    user.is_active = False
    user.save()
    assert authenticate_sync(scope(f"token={token}")).status == "invalid"


def test_password_change_revokes_tokens(user, token):
    user.set_password("another-Secret-456")
    user.save()
    assert authenticate_sync(scope(f"token={token}")).status == "invalid"


def test_ticket_is_single_use(user):
    ticket = ticket_issue(user_id=user.pk, expires_at=None)
    first = authenticate_sync(scope(f"ticket={ticket}"))
    assert first.ok and first.user == user and first.method == "ticket"
    assert authenticate_sync(scope(f"ticket={ticket}")).status == "invalid"
    assert ticket_redeem("") is None and ticket_redeem("x" * 100) is None


def test_ticket_expires(user, settings):
    settings.TICKET_TTL = 1
    ticket = ticket_issue(user_id=user.pk, expires_at=None)
    time.sleep(1.1)
    assert authenticate_sync(scope(f"ticket={ticket}")).status == "invalid"


def test_ticket_of_inactive_user(user):
    ticket = ticket_issue(user_id=user.pk, expires_at=None)
    user.is_active = False
    user.save()
    assert authenticate_sync(scope(f"ticket={ticket}")).status == "invalid"


def test_scoped_tokens():
    token = scoped_token_issue({"kind": "participant", "pid": 7}, ttl=60)
    claims = scoped_token_verify(token)
    assert claims["pid"] == 7 and claims["exp"] > time.time()
    result = authenticate_sync(scope(f"token={token}"))
    assert result.ok and result.claims["pid"] == 7 and not result.user.is_authenticated
    assert scoped_token_verify(token[:-2] + "xx") is None
    assert scoped_token_verify("rt1.nonsense") is None
    assert scoped_token_verify("not-scoped") is None
    expired = scoped_token_issue({"pid": 1}, ttl=-5)
    assert scoped_token_verify(expired) is None
    assert authenticate_sync(scope(f"token={expired}")).status == "invalid"


def test_refresh_validation(user, token):
    assert validate_refresh_token(token).ok
    assert not validate_refresh_token("").ok
    assert not validate_refresh_token("garbage").ok
    scoped = scoped_token_issue({"pid": 3}, ttl=30)
    assert validate_refresh_token(scoped).claims["pid"] == 3


def test_an_empty_query_credential_is_invalid_not_missing():
    assert extract_credential(scope("token=")) == ("token", "")
    assert authenticate_sync(scope("token=")).status == "invalid"
    assert authenticate_sync(scope("ticket=")).status == "invalid"


@pytest.mark.django_db(transaction=True)
async def test_routes_with_their_own_credential_are_not_checked_or_logged(caplog):
    import logging

    from realtime.auth import RealtimeAuthMiddleware

    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    caplog.set_level(logging.INFO, logger="realtime")
    middleware = RealtimeAuthMiddleware(
        inner, own_credential_paths=[r"^/ws/own/[^/]+/$"]
    )
    await middleware(
        {
            "type": "websocket",
            "path": "/ws/own/x/",
            "query_string": b"token=pt-123",
            "headers": [],
        },
        None,
        None,
    )
    assert seen["credential"] == ("token", "pt-123")
    assert seen["auth"].status == "missing" and not seen["user"].is_authenticated
    assert "refused" not in caplog.text
    await middleware(
        {
            "type": "websocket",
            "path": "/ws/echo/",
            "query_string": b"token=pt-123",
            "headers": [],
        },
        None,
        None,
    )
    assert seen["auth"].status == "invalid"
    assert "socket credential refused" in caplog.text
