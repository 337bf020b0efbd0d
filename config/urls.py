"""URL map: admin, REST API, OpenAPI docs, health and metrics, pages."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.views import LoginView, LogoutView
from django.urls import include, path
from django.views.generic import RedirectView, TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from config.live import live_json, live_page_view
from realtime.api import StatsView, TicketView, metrics_view, readyz

urlpatterns = [
    path("admin/realtime/live/", live_page_view, name="admin-realtime-live"),
    path("admin/realtime/live.json", live_json, name="admin-realtime-live-json"),
    path("admin/", admin.site.urls),
    # Sign-in for everyone (the admin's own form takes staff only): the pages' login.
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("api/auth/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/realtime/tickets/", TicketView.as_view(), name="realtime-tickets"),
    path("api/realtime/stats/", StatsView.as_view(), name="realtime-stats"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include("config.apidocs")),  # the sockets' AsyncAPI document
    # Browsers ask for /favicon.ico whatever a page links: no 404 in any log.
    path(
        "favicon.ico", RedirectView.as_view(url="/static/favicon.svg", permanent=True)
    ),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("sessions_app.urls")),
    path("", include("sessions_app.messenger.api.urls")),
    path("", include("camera.urls")),
    path("", include("realtime.copilot.urls")),
    path("", include("sessions_app.messenger.urls")),
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
]
