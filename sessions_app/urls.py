"""REST and page routes of this feature (included by config.urls)."""

from __future__ import annotations

from django.urls import path

from sessions_app import views
from sessions_app.api import views as api

urlpatterns = [
    path("api/sessions/", api.SessionListView.as_view(), name="sessions-list"),
    path(
        "api/sessions/<str:code>/",
        api.SessionDetailView.as_view(),
        name="sessions-detail",
    ),
    path(
        "api/sessions/<str:code>/join/",
        api.SessionJoinView.as_view(),
        name="sessions-join",
    ),
    path(
        "api/sessions/<str:code>/status/",
        api.SessionStatusView.as_view(),
        name="sessions-status",
    ),
    path(
        "api/sessions/<str:code>/messages/",
        api.SessionMessagesView.as_view(),
        name="sessions-messages",
    ),
    path("sessions/", views.session_index, name="session-index"),
    path("sessions/<str:code>/", views.session_room, name="session-room"),
]
