"""REST and page routes of this feature (included by config.urls)."""

urlpatterns: list = []
