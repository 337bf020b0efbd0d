"""Pages of the copilot (included by config.urls)."""

urlpatterns: list = []
