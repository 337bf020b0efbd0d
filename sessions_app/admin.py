"""Django admin for hosts and staff: sessions with live counts, close, CSV export."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from sessions_app import notify, services
from sessions_app.messenger import admin as messenger_admin  # noqa: F401  (registers)
from sessions_app.models import Message, Participant, Session
from sessions_app.selectors import session_online_count

CSV_COLUMNS = [
    "session",
    "seq",
    "message_id",
    "created_at",
    "kind",
    "participant_id",
    "nickname",
    "content",
    "hidden",
    "answered",
    "approved",
    "upvotes",
]


def csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (OWASP CSV injection): ``=cmd`` → ``'=cmd``."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def messages_csv(sessions: Iterable[Session], filename: str) -> HttpResponse:
    """Every stored message of ``sessions`` (pending questions too), in seq order."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for session in sessions:
        rows = session.messages.order_by(F("seq").asc(nulls_last=True), "id")
        for m in rows.iterator():
            writer.writerow(
                csv_cell(value)
                for value in (
                    session.code,
                    m.seq,
                    m.pk,
                    m.created_at.isoformat(),
                    m.kind,
                    m.participant_id,
                    m.nickname,
                    m.content,
                    m.hidden,
                    m.answered,
                    m.approved,
                    m.upvotes,
                )
            )
    return response


class ParticipantInline(admin.TabularInline):
    model = Participant
    extra = 0
    can_delete = False
    fields = ("nickname", "role", "user", "joined_at", "last_seen")
    readonly_fields = ("role", "user", "joined_at", "last_seen")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # people join through the join endpoint or a socket


class MessageInline(admin.TabularInline):
    """Read-only: history is what was said, in the order it was said."""

    model = Message
    extra = 0
    can_delete = False
    ordering = ("seq", "id")
    fields = (
        "seq",
        "kind",
        "nickname",
        "content",
        "created_at",
        "hidden",
        "answered",
        "approved",
        "upvotes",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Close selected sessions (their sockets get 4010)")
def close_sessions(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
    count = 0
    for session in queryset.filter(status=Session.Status.OPEN):
        closed = services.session_close(session_id=session.pk)
        if closed is not None:
            notify.session_closed_sync(
                session_id=closed.pk, code=closed.code, closed_at=closed.closed_at
            )
            count += 1
    modeladmin.message_user(request, f"Closed {count} session(s).", messages.SUCCESS)


@admin.action(description="Export messages of selected sessions as CSV")
def export_messages_csv(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet
) -> HttpResponse:
    sessions = list(queryset.order_by("created_at", "id"))
    name = sessions[0].code if len(sessions) == 1 else timezone.now().strftime("%Y%m%d")
    return messages_csv(sessions, f"session-messages-{name}.csv")


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "title",
        "host",
        "status",
        "moderated",
        "participant_count",
        "online_count",
        "last_seq",
        "created_at",
    )
    list_filter = ("status", "kind", "moderated")
    search_fields = ("code", "title")
    ordering = ("-created_at",)
    fields = (
        "kind",
        "code",
        "title",
        "host",
        "moderated",
        "status",
        "last_seq",
        "created_at",
        "closed_at",
    )
    readonly_fields = ("code", "status", "last_seq", "created_at", "closed_at")
    inlines = [ParticipantInline, MessageInline]
    actions = [close_sessions, export_messages_csv]
    list_select_related = ("host",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(participant_total=Count("participants", distinct=True))
        )

    @admin.display(description="participants", ordering="participant_total")
    def participant_count(self, obj: Session) -> int:
        return obj.participant_total

    @admin.display(description="online")
    def online_count(self, obj: Session) -> int:
        return session_online_count(session_id=obj.pk)

    def save_model(self, request: HttpRequest, obj: Session, form: Any, change: bool):
        super().save_model(request, obj, form, change)
        if not change and obj.host is not None:
            services.participant_for_user(session=obj, user=obj.host)
        elif change and {"title", "moderated"} & set(form.changed_data):
            notify.session_updated_sync(obj)

    def delete_model(self, request: HttpRequest, obj: Session) -> None:
        self.delete_queryset(request, Session.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        gone = list(queryset.values_list("pk", "code"))
        super().delete_queryset(request, queryset)
        for session_id, code in gone:
            notify.session_closed_sync(session_id=session_id, code=code)


@admin.action(description="Hide selected messages (tombstones for everyone)")
def hide_messages(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
    count = 0
    for message in queryset.filter(hidden=False):
        hidden, changed = services.message_hide(
            session_id=message.session_id, by=None, message_id=message.pk
        )
        if changed:
            notify.message_hidden_sync(hidden)
            count += 1
    modeladmin.message_user(request, f"Hid {count} message(s).", messages.SUCCESS)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "session",
        "seq",
        "kind",
        "nickname",
        "short_content",
        "hidden",
        "answered",
        "approved",
        "upvotes",
        "created_at",
    )
    list_filter = ("kind", "hidden", "approved", "answered")
    search_fields = ("session__code", "nickname", "content")
    list_select_related = ("session",)
    actions = [hide_messages]

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content if len(obj.content) <= 80 else obj.content[:79] + "…"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
