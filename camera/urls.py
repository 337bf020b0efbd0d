"""REST and page routes of this feature (included by config.urls)."""

from __future__ import annotations

from django.urls import path

from camera import api, views

urlpatterns = [
    path("api/streams/", api.StreamListView.as_view(), name="streams-list"),
    path(
        "api/streams/<str:stream_id>/",
        api.StreamDetailView.as_view(),
        name="streams-detail",
    ),
    path(
        "api/streams/<str:stream_id>/status/",
        api.StreamStatusView.as_view(),
        name="streams-status",
    ),
    path(
        "api/streams/<str:stream_id>/images/<str:kind>.jpg",
        api.StreamImageView.as_view(),
        name="streams-image",
    ),
    path(
        "api/streams/<str:stream_id>/transforms/",
        api.StreamTransformsView.as_view(),
        name="streams-transforms",
    ),
    path("streams/", views.stream_index, name="stream-index"),
    path("streams/<str:stream_id>/", views.stream_viewer, name="stream-viewer"),
]
