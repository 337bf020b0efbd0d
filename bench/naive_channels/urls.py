"""No HTTP views: the project only serves WebSockets."""

urlpatterns: list = []
