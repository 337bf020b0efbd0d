"""REST side of camera streams (docs/protocol.md §8): streams, status, latest data.

Public streams are readable by anybody; the others need a signed-in user (401
without one, so an anonymous caller learns nothing about which exist). Latest images
and poses come from the live state in the cache (``camera.live``), the same on
every server process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from camera.live import stream_latest_image, stream_latest_poses, stream_live_status
from camera.models import Stream
from camera.selectors import stream_get, stream_viewable, streams_visible
from realtime.protocol import utc_timestamp


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else utc_timestamp(datetime.fromtimestamp(epoch, UTC))


def stream_status_json(stream: Stream) -> dict[str, Any]:
    """Live status: measured fps, last frame time, viewers on every process."""
    status = stream_live_status(slug=stream.slug)
    return {
        "stream_id": stream.slug,
        "live": status["live"],
        "fps": status["fps"],
        "last_frame_at": _iso(status["last_frame_at"]),
        "seq": status["seq"],
        "viewers": status["viewers"],
        "kinds_available": status["kinds"],
    }


class StreamStatusSerializer(serializers.Serializer):
    stream_id = serializers.CharField()
    live = serializers.BooleanField()
    fps = serializers.FloatField()
    last_frame_at = serializers.DateTimeField(allow_null=True)
    seq = serializers.IntegerField(allow_null=True)
    viewers = serializers.IntegerField()
    kinds_available = serializers.ListField(child=serializers.CharField())


class StreamSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="slug")
    camera_matrix = serializers.SerializerMethodField()
    calibrated = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()

    class Meta:
        model = Stream
        fields = [
            "id",
            "title",
            "public",
            "width",
            "height",
            "fps",
            "kinds",
            "dictionary",
            "marker_length_m",
            "camera_matrix",
            "calibrated",
            "status",
            "urls",
        ]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_camera_matrix(self, stream: Stream) -> dict[str, Any]:
        return stream.camera_model().to_json()

    def get_calibrated(self, stream: Stream) -> bool:
        return bool(stream.camera_matrix)

    @extend_schema_field(StreamStatusSerializer)
    def get_status(self, stream: Stream) -> dict[str, Any]:
        return stream_status_json(stream)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_urls(self, stream: Stream) -> dict[str, Any]:
        base = f"/api/streams/{stream.slug}"
        return {
            "socket": f"/ws/streams/{stream.slug}/",
            "page": f"/streams/{stream.slug}/",
            "images": {kind: f"{base}/images/{kind}.jpg" for kind in stream.kinds},
            "transforms": f"{base}/transforms/",
        }


class StreamPosesSerializer(serializers.Serializer):
    stream_id = serializers.CharField()
    seq = serializers.IntegerField()
    captured_at = serializers.FloatField()
    markers = serializers.ListField(child=serializers.DictField())
    transforms = serializers.ListField(child=serializers.DictField())


class StreamView(APIView):
    """Base: the stream named by ``<stream_id>``, if this caller may see it."""

    permission_classes = [AllowAny]  # per stream: see get_stream

    def get_stream(self, request: Request, stream_id: str) -> Stream:
        stream = stream_get(slug=stream_id)
        if stream is not None and stream_viewable(stream=stream, user=request.user):
            return stream
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        raise exceptions.NotFound("no stream with this id")


class StreamListView(APIView):
    """Every stream the caller may watch (only public ones without signing in)."""

    permission_classes = [AllowAny]

    @extend_schema(responses=StreamSerializer(many=True))
    def get(self, request: Request) -> Response:
        streams = streams_visible(user=request.user)
        return Response(StreamSerializer(streams, many=True).data)


class StreamDetailView(StreamView):
    @extend_schema(responses=StreamSerializer)
    def get(self, request: Request, stream_id: str) -> Response:
        return Response(StreamSerializer(self.get_stream(request, stream_id)).data)


class StreamStatusView(StreamView):
    @extend_schema(responses=StreamStatusSerializer)
    def get(self, request: Request, stream_id: str) -> Response:
        return Response(stream_status_json(self.get_stream(request, stream_id)))


class IgnoreAccept(BaseContentNegotiation):
    """Errors of the image endpoint are JSON whatever the client accepts (an
    ``<img>`` asks for images only, and would otherwise get 406 instead of 404)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class StreamImageView(StreamView):
    """The latest JPEG of one kind; 404 before the first frame."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = IgnoreAccept

    @extend_schema(
        responses={
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY),
            404: OpenApiResponse(description="no frame of this kind yet"),
        }
    )
    def get(self, request: Request, stream_id: str, kind: str) -> HttpResponse:
        stream = self.get_stream(request, stream_id)
        if kind not in stream.kinds:
            offered = ", ".join(stream.kinds)
            raise exceptions.NotFound(f"this stream has no kind {kind!r} ({offered})")
        latest = stream_latest_image(slug=stream.slug, kind=kind)
        if latest is None:
            raise exceptions.NotFound(f"no {kind} frame yet: is the worker running?")
        seq, captured_at, jpeg = latest
        response = HttpResponse(jpeg, content_type="image/jpeg")
        response["Cache-Control"] = "no-store"
        response["X-Frame-Seq"] = str(seq)
        response["X-Captured-At"] = repr(float(captured_at))
        return response


class StreamTransformsView(StreamView):
    """The latest poses and marker-to-marker transforms; 404 before the first."""

    @extend_schema(responses=StreamPosesSerializer)
    def get(self, request: Request, stream_id: str) -> Response:
        stream = self.get_stream(request, stream_id)
        poses = stream_latest_poses(slug=stream.slug)
        if poses is None:
            raise exceptions.NotFound("no poses yet: is the worker running?")
        return Response({"stream_id": stream.slug, **poses})
