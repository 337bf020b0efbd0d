"""Pages of the copilot (included by config.urls)."""

from __future__ import annotations

from django.urls import path

from realtime.copilot.views import copilot_page

urlpatterns: list = [
    path("copilot/", copilot_page, name="copilot"),
]
