"""Admin: streams with their live status (fps, last frame, viewers) and tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from camera.live import stream_live_status
from camera.models import Stream
from camera.services import stream_token_regenerate


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "title",
        "public",
        "source",
        "live_fps",
        "last_frame",
        "viewers",
        "viewer_page",
    )
    list_filter = ("public",)
    search_fields = ("slug", "title", "source")
    readonly_fields = (
        "publish_token",
        "live_fps",
        "last_frame",
        "viewers",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("slug", "title", "public", "source")}),
        ("Capture", {"fields": ("width", "height", "fps", "kinds")}),
        (
            "Markers and optics",
            {
                "fields": (
                    "dictionary",
                    "marker_length_m",
                    "camera_matrix",
                    "dist_coeffs",
                )
            },
        ),
        (
            "Status",
            {"fields": ("live_fps", "last_frame", "viewers", "publish_token")},
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    actions = ["regenerate_tokens"]

    @admin.display(description="fps")
    def live_fps(self, stream: Stream) -> str:
        status = stream_live_status(slug=stream.slug, viewers=False)
        return f"{status['fps']:.1f}" if status["live"] else "-"

    @admin.display(description="last frame")
    def last_frame(self, stream: Stream) -> str:
        last = stream_live_status(slug=stream.slug, viewers=False)["last_frame_at"]
        if last is None:
            return "never"
        return datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    @admin.display(description="viewers")
    def viewers(self, stream: Stream) -> int:
        return stream_live_status(slug=stream.slug)["viewers"]

    @admin.display(description="page")
    def viewer_page(self, stream: Stream) -> str:
        return format_html('<a href="/streams/{}/">watch</a>', stream.slug)

    @admin.action(description="Regenerate the publish token (restart the worker)")
    def regenerate_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        for stream in queryset:
            stream_token_regenerate(stream=stream)
        self.message_user(
            request,
            f"New publish tokens for {queryset.count()} stream(s): workers using "
            "--token need the new one.",
            messages.SUCCESS,
        )
