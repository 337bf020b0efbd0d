"""DRF views of the session API: parse, call a service or selector, answer.

Writes that sockets must hear about (rename, moderation switch, close, delete) are
pushed to them after the write, exactly as the socket's own ``session.close`` would.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from sessions_app import join_limits, notify, selectors, services
from sessions_app.api.authentication import (
    CanReadSession,
    IsSessionHost,
    ParticipantTokenAuthentication,
)
from sessions_app.api.serializers import (
    JoinResultSerializer,
    JoinSerializer,
    MessagePageSerializer,
    MessageSerializer,
    SessionCreateSerializer,
    SessionSerializer,
    SessionUpdateSerializer,
    StatusSerializer,
)
from sessions_app.conf import sessions_settings
from sessions_app.models import Session

# The participant-token class comes first: simplejwt would refuse an ``rt1.`` token.
AUTHENTICATION = [
    ParticipantTokenAuthentication,
    JWTAuthentication,
    SessionAuthentication,
]
MAX_PAGE_SIZE = 500


class SessionView(APIView):
    """Base: the session named by ``<code>`` in the URL, permissions checked."""

    authentication_classes = AUTHENTICATION
    permission_classes = [CanReadSession]

    def get_session(self, request: Request, code: str) -> Session:
        session = selectors.session_get(code=code)
        if session is None:
            raise exceptions.NotFound("no session with this code")
        self.check_object_permissions(request, session)
        return session


class SessionListView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=SessionSerializer(many=True))
    def get(self, request: Request) -> Response:
        """The caller's own sessions, newest first."""
        sessions = selectors.session_list_hosted(user=request.user)
        return Response(SessionSerializer(sessions, many=True).data)

    @extend_schema(request=SessionCreateSerializer, responses={201: SessionSerializer})
    def post(self, request: Request) -> Response:
        """Open a session; the caller is its host."""
        data = SessionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.session_create(host=request.user, **data.validated_data)
        return Response(SessionSerializer(session).data, status=status.HTTP_201_CREATED)


class SessionDetailView(SessionView):
    def get_permissions(self) -> list[Any]:
        if self.request.method in ("PATCH", "PUT", "DELETE"):
            return [IsSessionHost()]
        return [CanReadSession()]

    @extend_schema(responses=SessionSerializer)
    def get(self, request: Request, code: str) -> Response:
        return Response(SessionSerializer(self.get_session(request, code)).data)

    @extend_schema(request=SessionUpdateSerializer, responses=SessionSerializer)
    def patch(self, request: Request, code: str) -> Response:
        """Host: rename, switch moderation, close (sockets get 4010) or reopen."""
        session = self.get_session(request, code)
        data = SessionUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        new_status = changes.pop("status", None)
        if changes:
            services.session_update(session=session, **changes)
            notify.session_updated_sync(session)
        if new_status == Session.Status.CLOSED:
            closed = services.session_close(session_id=session.pk)
            if closed is not None:
                notify.session_closed_sync(
                    session_id=closed.pk, code=closed.code, closed_at=closed.closed_at
                )
        elif new_status == Session.Status.OPEN:
            services.session_reopen(session_id=session.pk)
        session.refresh_from_db()
        return Response(SessionSerializer(session).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, code: str) -> Response:
        """Host: delete the session and its history; its sockets are closed 4010."""
        session = self.get_session(request, code)
        session_id, session_code = session.pk, session.code
        services.session_delete(session=session)
        notify.session_closed_sync(session_id=session_id, code=session_code)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionJoinView(APIView):
    """A guest joins with a nickname and gets its participant token (no auth).

    Throttled by what guessing produces, not by joins (``sessions_app.join_limits``):
    a venue's audience behind one address all get in.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=JoinSerializer, responses={201: JoinResultSerializer})
    def post(self, request: Request, code: str) -> Response:
        address = BaseThrottle().get_ident(request)  # NUM_PROXIES decides whose
        join_limits.join_address_check(address=address)
        session = selectors.session_get(code=code)
        if session is None or not session.is_open:
            join_limits.join_miss(address=address)
            if session is None:
                raise exceptions.NotFound("no session with this code")
            raise services.SessionClosed()
        data = JoinSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        join_limits.join_session_count(code=session.code)
        participant, token = services.participant_guest_join(
            session=session, nickname=data.validated_data["nickname"]
        )
        result = {
            "participant_id": participant.pk,
            "token": token,
            "nickname": participant.nickname,
            "role": participant.role,
            "session_code": session.code,
            "expires_in": int(services.guest_token_ttl()),
        }
        return Response(result, status=status.HTTP_201_CREATED)


class SessionStatusView(SessionView):
    @extend_schema(responses=StatusSerializer)
    def get(self, request: Request, code: str) -> Response:
        """Who is online now (from presence) and how many ever joined."""
        session = self.get_session(request, code)
        return Response(selectors.session_status(session=session))


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise exceptions.ValidationError({name: f"must be an integer in {low}..{high}"})
    return int(raw)


class SessionMessagesView(SessionView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="only seqs above this (0)"),
            OpenApiParameter("limit", int, description="page size (100, at most 500)"),
        ],
        responses=MessagePageSerializer,
    )
    def get(self, request: Request, code: str) -> Response:
        """History in seq order, ``limit`` at a time; ``next`` continues after the
        last seq of this page (keyset: stable while new messages arrive)."""
        session = self.get_session(request, code)
        page_size = sessions_settings.SESSION_HISTORY_PAGE_SIZE
        after = _query_int(request, "after", 0, 0, 2**53)
        limit = _query_int(
            request, "limit", min(page_size, MAX_PAGE_SIZE), 1, MAX_PAGE_SIZE
        )
        rows = selectors.session_messages(
            session_id=session.pk, after=after, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_url = None
        if more:
            next_url = replace_query_param(
                request.build_absolute_uri(), "after", rows[-1].seq
            )
            next_url = replace_query_param(next_url, "limit", limit)
        return Response(
            {
                "results": MessageSerializer(rows, many=True).data,
                "next": next_url,
                "last_seq": session.last_seq,
            }
        )
