"""REST routes of the messenger (included by config.urls)."""

from __future__ import annotations

from django.urls import path

from sessions_app.messenger.api import views

CONVERSATION = "api/conversations/<uuid:conversation_id>/"
MESSAGE = CONVERSATION + "messages/<int:message_id>/"

urlpatterns = [
    path(
        "api/conversations/",
        views.ConversationListView.as_view(),
        name="conversations-list",
    ),
    path(
        CONVERSATION,
        views.ConversationDetailView.as_view(),
        name="conversations-detail",
    ),
    path(
        CONVERSATION + "members/",
        views.MemberListView.as_view(),
        name="conversations-members",
    ),
    path(
        CONVERSATION + "members/<int:user_id>/",
        views.MemberDetailView.as_view(),
        name="conversations-member",
    ),
    path(
        CONVERSATION + "messages/",
        views.MessageListView.as_view(),
        name="conversations-messages",
    ),
    path(MESSAGE, views.MessageDetailView.as_view(), name="conversations-message"),
    path(
        MESSAGE + "reactions/",
        views.ReactionView.as_view(),
        name="conversations-reactions",
    ),
    path(CONVERSATION + "read/", views.ReadView.as_view(), name="conversations-read"),
    path(
        CONVERSATION + "notifications/",
        views.NotificationView.as_view(),
        name="conversations-notifications",
    ),
    path("api/search/messages/", views.SearchView.as_view(), name="messages-search"),
]
