"""DRF views of the messenger (PROTOCOL §9): parse, call a service or selector, answer.

Users only (JWT or session cookie); a guest's participant token is not a JWT, so it
is refused with 401. Services raise domain errors, which the project's REST handler
(``realtime.drf``) answers as 400/403/404/409; every write pushes the same frames to
sockets as the socket's own write, because it is the same service call.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from realtime.protocol import utc_timestamp
from sessions_app.messenger import search, selectors, services
from sessions_app.messenger.api import serializers as s
from sessions_app.messenger.conf import knob


class MessengerView(APIView):
    authentication_classes = [JWTAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


def _data(serializer_class: type, request: Request) -> dict[str, Any]:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


def _entry(request: Request, conversation_id: UUID) -> Response:
    entry = selectors.conversation_detail(
        conversation_id=conversation_id, user=request.user
    )
    return Response(s.ConversationSerializer(entry).data)


class ConversationListView(MessengerView):
    @extend_schema(responses=s.ConversationSerializer(many=True))
    def get(self, request: Request) -> Response:
        """The caller's conversations, most recently active first, with unreads."""
        entries = selectors.conversation_list(user=request.user)
        return Response(s.ConversationSerializer(entries, many=True).data)

    @extend_schema(
        request=s.ConversationCreateSerializer,
        responses={201: s.ConversationSerializer, 200: s.ConversationSerializer},
    )
    def post(self, request: Request) -> Response:
        """A group (the caller owns it) or the direct conversation with one user
        (200 with the existing one if the pair has one)."""
        conversation, created = services.conversation_create(
            user=request.user, **_data(s.ConversationCreateSerializer, request)
        )
        response = _entry(request, conversation.pk)
        if created:
            response.status_code = status.HTTP_201_CREATED
        return response


class ConversationDetailView(MessengerView):
    @extend_schema(responses=s.ConversationSerializer)
    def get(self, request: Request, conversation_id: UUID) -> Response:
        return _entry(request, conversation_id)

    @extend_schema(
        request=s.ConversationUpdateSerializer, responses=s.ConversationSerializer
    )
    def patch(self, request: Request, conversation_id: UUID) -> Response:
        """The owner renames a group."""
        services.conversation_update(
            conversation_id=conversation_id,
            user=request.user,
            **_data(s.ConversationUpdateSerializer, request),
        )
        return _entry(request, conversation_id)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, conversation_id: UUID) -> Response:
        """The owner deletes a group and its history."""
        services.conversation_delete(conversation_id=conversation_id, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListView(MessengerView):
    @extend_schema(
        request=s.MemberAddSerializer,
        responses={201: s.MemberSerializer, 200: s.MemberSerializer},
    )
    def post(self, request: Request, conversation_id: UUID) -> Response:
        """The owner adds a user (200 if already a member)."""
        member, added = services.member_add(
            conversation_id=conversation_id,
            user=request.user,
            **_data(s.MemberAddSerializer, request),
        )
        body = {
            "conversation_id": str(member.conversation_id),
            "user_id": member.user_id,
            "role": member.role,
            "joined_at": utc_timestamp(member.joined_at),
        }
        return Response(body, status=201 if added else 200)


class MemberDetailView(MessengerView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, conversation_id: UUID, user_id: int) -> Response:
        """The owner removes a member, or a member leaves (their own id)."""
        services.member_remove(
            conversation_id=conversation_id, user=request.user, user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _query_int(request: Request, name: str, high: int, low: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise exceptions.ValidationError({name: f"must be an integer in {low}..{high}"})
    return int(raw)


def _message(message: Any, reactions: dict | None = None) -> dict[str, Any]:
    return s.MessageSerializer(message, context={"reactions": reactions or {}}).data


class MessageListView(MessengerView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="only seqs above this"),
            OpenApiParameter("before", int, description="only seqs below this"),
            OpenApiParameter("limit", int, description="page size (50, at most 200)"),
        ],
        responses=s.MessagePageSerializer,
    )
    def get(self, request: Request, conversation_id: UUID) -> Response:
        """History in seq order (keyset by seq: stable while messages arrive):
        after ``after``, else before ``before``, else the newest page. ``next`` and
        ``previous`` continue either way; deleted messages are tombstones."""
        most = knob("MESSENGER_MAX_PAGE_SIZE")
        limit = _query_int(request, "limit", most, low=1) or min(
            knob("MESSENGER_PAGE_SIZE"), most
        )
        page = selectors.messages_page(
            conversation_id=conversation_id,
            user=request.user,
            after=_query_int(request, "after", 2**53),
            before=_query_int(request, "before", 2**53),
            limit=limit,
        )
        url = remove_query_param(request.build_absolute_uri(), "before")
        url = remove_query_param(replace_query_param(url, "limit", limit), "after")
        rows = page.messages
        return Response(
            {
                "results": [_message(m, page.reactions) for m in rows],
                "next": replace_query_param(url, "after", rows[-1].seq)
                if rows and page.has_newer
                else None,
                "previous": replace_query_param(url, "before", rows[0].seq)
                if rows and page.has_older
                else None,
                "last_seq": page.last_seq,
            }
        )

    @extend_schema(
        request=s.MessageSendSerializer,
        responses={201: s.MessageSerializer, 200: s.MessageSerializer},
    )
    def post(self, request: Request, conversation_id: UUID) -> Response:
        """Send; a retry with the same ``client_id`` answers 200 with the original."""
        message, created = services.message_send(
            conversation_id=conversation_id,
            user=request.user,
            **_data(s.MessageSendSerializer, request),
        )
        return Response(_message(message), status=201 if created else 200)


class MessageDetailView(MessengerView):
    @extend_schema(request=s.MessageEditSerializer, responses=s.MessageSerializer)
    def patch(
        self, request: Request, conversation_id: UUID, message_id: int
    ) -> Response:
        """The author edits; earlier versions are kept."""
        message = services.message_edit(
            conversation_id=conversation_id,
            message_id=message_id,
            user=request.user,
            **_data(s.MessageEditSerializer, request),
        )
        return Response(_message(message))

    @extend_schema(responses={204: None})
    def delete(
        self, request: Request, conversation_id: UUID, message_id: int
    ) -> Response:
        """The author deletes: a tombstone keeps the seq."""
        services.message_delete(
            conversation_id=conversation_id, message_id=message_id, user=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReactionView(MessengerView):
    @extend_schema(request=s.ReactionSerializer, responses=s.ReactionsSerializer)
    def post(
        self, request: Request, conversation_id: UUID, message_id: int
    ) -> Response:
        """Toggle the caller's reaction; answers every emoji's count."""
        counts, added = services.reaction_toggle(
            conversation_id=conversation_id,
            message_id=message_id,
            user=request.user,
            **_data(s.ReactionSerializer, request),
        )
        body = {
            "conversation_id": str(conversation_id),
            "message_id": message_id,
            "reactions": counts,
            "added": added,
        }
        return Response(body)


class ReadView(MessengerView):
    @extend_schema(request=s.ReadSerializer, responses=s.ReadStateSerializer)
    def post(self, request: Request, conversation_id: UUID) -> Response:
        """Read up to ``message_id`` (or ``seq``); never moves back."""
        member, moved = services.read_mark(
            conversation_id=conversation_id,
            user=request.user,
            **_data(s.ReadSerializer, request),
        )
        body = {
            "conversation_id": str(conversation_id),
            "last_read_seq": member.last_read_seq,
            "read_at": utc_timestamp(member.last_read_at)
            if member.last_read_at
            else None,
            "moved": moved,
        }
        return Response(body)


class NotificationView(MessengerView):
    @extend_schema(responses=s.NotificationSerializer)
    def get(self, request: Request, conversation_id: UUID) -> Response:
        entry = selectors.conversation_detail(
            conversation_id=conversation_id, user=request.user
        )
        return Response({"muted": entry.member.muted})

    @extend_schema(request=s.NotificationSerializer, responses=s.NotificationSerializer)
    def put(self, request: Request, conversation_id: UUID) -> Response:
        member = services.notification_set(
            conversation_id=conversation_id,
            user=request.user,
            **_data(s.NotificationSerializer, request),
        )
        return Response({"muted": member.muted})


class SearchView(MessengerView):
    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True, description="words")],
        responses=s.SearchResultSerializer,
    )
    def get(self, request: Request) -> Response:
        """The newest messages with every word of ``q``, in the caller's
        conversations only; deleted messages are never found."""
        found = search.message_search(
            user=request.user, q=request.query_params.get("q", "")
        )
        reactions = selectors.reaction_counts(message_ids=[m.pk for m in found])
        return Response({"results": [_message(m, reactions) for m in found]})
