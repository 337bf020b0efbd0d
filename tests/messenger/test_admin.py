"""The messenger's admin: searchable, counted, read-only; tombstones, history."""

from __future__ import annotations

import pytest

from sessions_app.messenger import services

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/admin/sessions_app/conversation/"
MESSAGES = "/admin/sessions_app/conversationmessage/"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_conversations_are_listed_with_counts_and_found_by_member(
    admin_client, group, alice, bob
):
    services.message_send(conversation_id=group.pk, user=alice, content="hello")
    page = admin_client.get(CONVERSATIONS).content.decode()
    assert "Team" in page
    assert (
        admin_client.get(CONVERSATIONS + "?q=bob").content.decode().count("Team") >= 1
    )
    assert "Team" not in admin_client.get(CONVERSATIONS + "?q=nobody").content.decode()
    detail = admin_client.get(f"{CONVERSATIONS}{group.pk}/change/")
    assert detail.status_code == 200 and "alice" in detail.content.decode()
    assert admin_client.get(CONVERSATIONS + "add/").status_code == 403


def test_messages_show_tombstones_and_edit_history(admin_client, group, alice):
    kept, _ = services.message_send(conversation_id=group.pk, user=alice, content="v1")
    services.message_edit(message_id=kept.pk, user=alice, content="v2 findme")
    gone, _ = services.message_send(
        conversation_id=group.pk, user=alice, content="secret"
    )
    services.message_delete(message_id=gone.pk, user=alice)
    listing = admin_client.get(MESSAGES).content.decode()
    assert "(deleted)" in listing and "secret" not in listing
    assert "v2 findme" in admin_client.get(MESSAGES + "?q=findme").content.decode()
    detail = admin_client.get(f"{MESSAGES}{kept.pk}/change/").content.decode()
    assert "v1" in detail and "Earlier versions" in detail
