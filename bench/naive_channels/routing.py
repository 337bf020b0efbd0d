"""WebSocket routes of the naive Channels project."""

from django.urls import re_path

from .consumers import SessionConsumer

websocket_urlpatterns = [
    re_path(r"^ws/sessions/(?P<code>[\w-]+)/$", SessionConsumer.as_asgi()),
]
