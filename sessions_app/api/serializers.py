"""Request and response shapes of the session API (also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from realtime.protocol import utc_timestamp
from sessions_app.frames import message_payload
from sessions_app.models import MAX_TITLE, Message, Session
from sessions_app.services import title_clean


class TimestampField(serializers.DateTimeField):
    """UTC, millisecond precision, ``Z``: the same text the sockets send."""

    def to_representation(self, value: Any) -> str | None:
        return utc_timestamp(value) if value else None


class SessionSerializer(serializers.ModelSerializer):
    host_id = serializers.IntegerField(read_only=True, allow_null=True)
    created_at = TimestampField(read_only=True)
    closed_at = TimestampField(read_only=True, allow_null=True)
    ws_path = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = Session
        fields = [
            "code",
            "title",
            "status",
            "moderated",
            "host_id",
            "last_seq",
            "created_at",
            "closed_at",
            "ws_path",
            "page_url",
        ]
        read_only_fields = fields

    def get_ws_path(self, obj: Session) -> str:
        return f"/ws/sessions/{obj.code}/"

    def get_page_url(self, obj: Session) -> str:
        return f"/sessions/{obj.code}/"


class SessionCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=MAX_TITLE)
    moderated = serializers.BooleanField(default=False)

    def validate_title(self, value: str) -> str:
        return title_clean(value)  # 1..200 chars is already checked: only tidies


class SessionUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=MAX_TITLE, required=False)
    moderated = serializers.BooleanField(required=False)
    status = serializers.ChoiceField(choices=Session.Status.choices, required=False)

    def validate_title(self, value: str) -> str:
        return title_clean(value)  # 1..200 chars is already checked: only tidies


class JoinSerializer(serializers.Serializer):
    # The rest of the nickname's rules are the service's (400 naming the field).
    nickname = serializers.CharField(max_length=200, trim_whitespace=True)


class JoinResultSerializer(serializers.Serializer):
    participant_id = serializers.IntegerField()
    token = serializers.CharField()
    nickname = serializers.CharField()
    role = serializers.CharField()
    session_code = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="seconds the token stays valid")


class ParticipantSerializer(serializers.Serializer):
    participant_id = serializers.IntegerField()
    nickname = serializers.CharField()
    role = serializers.CharField()


class StatusSerializer(serializers.Serializer):
    session_code = serializers.CharField()
    status = serializers.CharField()
    online_participants = ParticipantSerializer(many=True)
    online_count = serializers.IntegerField(help_text="distinct participants online")
    online_connections = serializers.IntegerField(help_text="sockets (tabs) online")
    total_participants = serializers.IntegerField(help_text="every participant row")
    last_seq = serializers.IntegerField()


class MessageSerializer(serializers.Serializer):
    """A stored message as history shows it: the socket payload plus ``kind``."""

    seq = serializers.IntegerField()
    message_id = serializers.IntegerField()
    kind = serializers.CharField()
    participant_id = serializers.IntegerField(allow_null=True)
    nickname = serializers.CharField()
    content = serializers.CharField(help_text='"" when hidden')
    created_at = serializers.CharField()
    client_id = serializers.CharField(allow_null=True)
    upvotes = serializers.IntegerField(allow_null=True, help_text="questions only")
    answered = serializers.BooleanField(allow_null=True, help_text="questions only")
    hidden = serializers.BooleanField()

    def to_representation(self, instance: Message) -> dict[str, Any]:
        payload = message_payload(instance)
        return {
            "seq": instance.seq,
            "message_id": instance.pk,
            "kind": instance.kind,
            "participant_id": instance.participant_id,
            "nickname": instance.nickname,
            "content": payload["content"],
            "created_at": utc_timestamp(instance.created_at),
            "client_id": instance.client_id,
            "upvotes": payload.get("upvotes"),
            "answered": payload.get("answered"),
            "hidden": instance.hidden,
        }


class MessagePageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="URL of the next page")
    last_seq = serializers.IntegerField(help_text="the session's newest seq")
