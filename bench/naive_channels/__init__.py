"""Minimal Django Channels project: AsyncWebsocketConsumer + group_send (naive)."""
