"""Request and response shapes of the messenger API (also its OpenAPI schema).

Inputs are only typed here; the rules (lengths, membership, who may) are the
services', so the REST edge and the socket edge refuse the same things the same way.
Messages are shown as the sockets' ``message.new`` payload plus their reactions.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from realtime.protocol import utc_timestamp
from sessions_app.messenger.frames import message_payload
from sessions_app.messenger.models import (
    MAX_CLIENT_ID,
    MAX_EMOJI,
    Conversation,
    ConversationMessage,
)
from sessions_app.messenger.selectors import ConversationEntry


def _time(value: Any) -> str | None:
    return utc_timestamp(value) if value is not None else None


class MessageSerializer(serializers.Serializer):
    """A message as ``message.new`` carries it, with ``reactions`` counts."""

    conversation_id = serializers.UUIDField()
    seq = serializers.IntegerField()
    message_id = serializers.IntegerField()
    sender_id = serializers.IntegerField(allow_null=True)
    content = serializers.CharField(help_text='"" once deleted')
    created_at = serializers.CharField()
    client_id = serializers.CharField(required=False)
    reply_to = serializers.IntegerField(required=False)
    edited_at = serializers.CharField(required=False)
    deleted_at = serializers.CharField(required=False)
    reactions = serializers.DictField(child=serializers.IntegerField())

    def to_representation(self, instance: ConversationMessage) -> dict[str, Any]:
        reactions = self.context.get("reactions", {})
        return {
            **message_payload(instance),
            "reactions": reactions.get(instance.pk, {}),
        }


class ConversationSerializer(serializers.Serializer):
    """One conversation as its member sees it (``ConversationEntry``)."""

    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=Conversation.Kind.choices)
    title = serializers.CharField()
    member_ids = serializers.ListField(child=serializers.IntegerField())
    role = serializers.CharField(help_text="yours: owner or member")
    muted = serializers.BooleanField()
    unread = serializers.IntegerField()
    last_read_seq = serializers.IntegerField()
    last_seq = serializers.IntegerField()
    last_message = MessageSerializer(allow_null=True)
    created_at = serializers.CharField()
    ws_path = serializers.CharField()

    def to_representation(self, entry: ConversationEntry) -> dict[str, Any]:
        conversation, member = entry.conversation, entry.member
        last = entry.last_message
        return {
            "id": str(conversation.pk),
            "kind": conversation.kind,
            "title": conversation.title,
            "member_ids": entry.member_ids,
            "role": member.role,
            "muted": member.muted,
            "unread": entry.unread,
            "last_read_seq": member.last_read_seq,
            "last_seq": conversation.last_seq,
            "last_message": MessageSerializer(last).data if last else None,
            "created_at": _time(conversation.created_at),
            "ws_path": "/ws/messenger/",
        }


class ConversationCreateSerializer(serializers.Serializer):
    member_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, default=list
    )
    title = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False
    )
    kind = serializers.ChoiceField(
        choices=Conversation.Kind.choices,
        required=False,
        help_text="default: direct for one other member and no title, else group",
    )


class ConversationUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(allow_blank=True, trim_whitespace=False)


class MemberAddSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()


class MemberSerializer(serializers.Serializer):
    conversation_id = serializers.UUIDField()
    user_id = serializers.IntegerField()
    role = serializers.CharField()
    joined_at = serializers.CharField()


class MessagePageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="newer messages' URL")
    previous = serializers.CharField(allow_null=True, help_text="older messages' URL")
    last_seq = serializers.IntegerField(help_text="the conversation's newest seq")


class MessageSendSerializer(serializers.Serializer):
    content = serializers.CharField(trim_whitespace=False, allow_blank=True)
    client_id = serializers.CharField(
        required=False, max_length=MAX_CLIENT_ID, help_text="a retry stores nothing"
    )
    reply_to = serializers.IntegerField(required=False, help_text="a message_id")


class MessageEditSerializer(serializers.Serializer):
    content = serializers.CharField(trim_whitespace=False, allow_blank=True)


class ReactionSerializer(serializers.Serializer):
    emoji = serializers.CharField(max_length=MAX_EMOJI, trim_whitespace=False)


class ReactionsSerializer(serializers.Serializer):
    conversation_id = serializers.UUIDField()
    message_id = serializers.IntegerField()
    reactions = serializers.DictField(child=serializers.IntegerField())
    added = serializers.BooleanField(help_text="false: the toggle took it back")


class ReadSerializer(serializers.Serializer):
    message_id = serializers.IntegerField(required=False)
    seq = serializers.IntegerField(required=False)


class ReadStateSerializer(serializers.Serializer):
    conversation_id = serializers.UUIDField()
    last_read_seq = serializers.IntegerField()
    read_at = serializers.CharField(allow_null=True)
    moved = serializers.BooleanField(help_text="false: it was already there or later")


class NotificationSerializer(serializers.Serializer):
    muted = serializers.BooleanField()


class SearchResultSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
