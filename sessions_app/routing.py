"""Socket routes of this feature (included by realtime.routing)."""

websocket_urlpatterns: list = []
