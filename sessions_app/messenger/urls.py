"""Page routes of the messenger (included by config.urls)."""

from __future__ import annotations

from django.urls import path

from sessions_app.messenger.views import messenger_names, messenger_page

urlpatterns = [
    path("messenger/", messenger_page, name="messenger"),
    path("messenger/names/", messenger_names, name="messenger-names"),
]
