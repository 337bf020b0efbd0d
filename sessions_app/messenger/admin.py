"""Django admin for staff: conversations with their members and message counts, and
messages with their edit history, read-only (writes go through the services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from sessions_app.messenger.models import (
    Conversation,
    ConversationMember,
    ConversationMessage,
    MessageRevision,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MemberInline(ReadOnlyInline):
    model = ConversationMember
    fields = ("user", "role", "joined_at", "muted", "last_read_seq", "last_read_at")
    readonly_fields = fields


class RevisionInline(ReadOnlyInline):
    model = MessageRevision
    fields = ("replaced_at", "content")
    readonly_fields = fields
    verbose_name_plural = "earlier versions (oldest first)"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Seqs, read positions and tombstones are the services' to keep consistent."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "kind", "member_count", "message_count", "created_at")
    list_filter = ("kind",)
    search_fields = ("title", "members__user__username", "=id")
    readonly_fields = ("id", "kind", "title", "created_by", "last_seq", "created_at")
    fields = readonly_fields
    inlines = [MemberInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Two independent counts: distinct, or the join would multiply them.
        return (
            super()
            .get_queryset(request)
            .annotate(
                members_n=Count("members", distinct=True),
                messages_n=Count("messages", distinct=True),
            )
        )

    @admin.display(description="members", ordering="members_n")
    def member_count(self, obj: Conversation) -> int:
        return obj.members_n

    @admin.display(description="messages", ordering="messages_n")
    def message_count(self, obj: Conversation) -> int:
        return obj.messages_n


@admin.register(ConversationMessage)
class ConversationMessageAdmin(ReadOnlyAdmin):
    list_display = ("conversation", "seq", "sender", "shown", "created_at", "state")
    list_select_related = ("conversation", "sender")
    list_filter = ("edited_at", "deleted_at")
    search_fields = ("content", "=conversation__id")
    readonly_fields = (
        "conversation",
        "seq",
        "sender",
        "shown",
        "client_id",
        "reply_to",
        "created_at",
        "edited_at",
        "deleted_at",
    )
    fields = readonly_fields
    inlines = [RevisionInline]

    @admin.display(description="content")
    def shown(self, obj: ConversationMessage) -> str:
        return "(deleted)" if obj.deleted_at is not None else obj.content[:200]

    @admin.display(description="state")
    def state(self, obj: ConversationMessage) -> str:
        if obj.deleted_at is not None:
            return "deleted"
        return "edited" if obj.edited_at is not None else ""
