"""Who may call the session API: users (JWT, session cookie) and guests (participant
tokens from the join endpoint, as ``Authorization: Bearer rt1...``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from realtime.tokens import SCOPED_PREFIX, scoped_token_verify


class ParticipantClaims(dict):
    """``request.auth`` of a guest: the participant token's claims."""


class ParticipantTokenAuthentication(BaseAuthentication):
    """A guest's participant token; anything else is left to the next authenticator."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ParticipantClaims] | None:
        scheme, _, raw = (
            get_authorization_header(request).decode("latin1").partition(" ")
        )
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw.startswith(SCOPED_PREFIX):
            return None
        claims = scoped_token_verify(raw)
        if claims is None or claims.get("kind") != "participant":
            raise AuthenticationFailed("invalid or expired participant token")
        return AnonymousUser(), ParticipantClaims(claims)

    def authenticate_header(self, request: Any) -> str:
        return f'{self.keyword} realm="api"'


def participant_claims(request: Any) -> ParticipantClaims | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ParticipantClaims) else None


class CanReadSession(BasePermission):
    """Signed-in users, or guests holding a token of this very session."""

    message = "a participant token of another session"

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user.is_authenticated or participant_claims(request))

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        if request.user.is_authenticated:
            return True
        claims = participant_claims(request)
        return claims is not None and claims.get("session") == obj.code


class IsSessionHost(BasePermission):
    """Writes to a session: its host only."""

    message = "only the host may change this session"

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user.is_authenticated or participant_claims(request))

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return request.user.is_authenticated and obj.host_id == request.user.pk


class ParticipantTokenScheme(OpenApiAuthenticationExtension):
    """Names the participant token in the OpenAPI schema."""

    target_class = ParticipantTokenAuthentication
    name = "participantToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "rt1 participant token",
            "description": "From POST /api/sessions/{code}/join/ (guests).",
        }
