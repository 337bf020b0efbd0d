"""A REST write and a service call push the same frames, through the process's hub."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from realtime.hub import get_hub
from sessions_app.messenger import frames, services
from sessions_app.messenger.groups import (
    activity_group,
    conversation_group,
    inbox_group,
)
from sessions_app.messenger.models import ConversationMessage
from tests.conftest import access_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


class Recorder:
    """A hub member standing in for a socket: it keeps every event it is handed."""

    def __init__(self, name: str) -> None:
        self.channel_name = name
        self.events: list[dict] = []

    def deliver_now(self, event: dict) -> bool:
        self.events.append(event)
        return True

    async def hub_deliver(self, event: dict) -> None:  # pragma: no cover - unused
        self.events.append(event)

    def frames(self) -> list[dict]:
        """The text frames (broadcasts); typed events are in ``typed``."""
        return [json.loads(e["text"]) for e in self.events if "text" in e]

    def typed(self) -> list[dict]:
        return [e for e in self.events if "text" not in e]


async def listen(group: str) -> Recorder:
    recorder = Recorder(f"test!{group}")
    await get_hub().join(group, recorder)
    return recorder


async def test_a_rest_send_pushes_what_a_service_send_pushes(group, alice, bob):
    room = await listen(conversation_group(group.pk))
    bobs = await listen(activity_group(group.pk))
    by_service, _ = await sync_to_async(services.message_send)(
        conversation_id=group.pk, user=alice, content="one", client_id="a"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(alice)}")
    reply = await sync_to_async(client.post)(
        f"/api/conversations/{group.pk}/messages/",
        {"content": "two", "client_id": "b"},
        format="json",
    )
    assert reply.status_code == 201
    by_rest = await sync_to_async(ConversationMessage.objects.get)(
        pk=reply.json()["message_id"]
    )
    sent = room.frames()
    assert [f["type"] for f in sent] == ["message.new", "message.new"]
    assert [e["seq"] for e in room.events] == [1, 2]
    assert sent[0]["payload"] == frames.message_payload(by_service)
    assert sent[1]["payload"] == frames.message_payload(by_rest)
    body = reply.json()
    assert body.pop("reactions") == {} and body == sent[1]["payload"]
    activity = [(e["type"], e["seq"], e["sender_id"]) for e in bobs.typed()]
    assert activity == [
        ("messenger.activity", 1, alice.pk),
        ("messenger.activity", 2, alice.pk),
    ]


async def test_a_rest_removal_tells_the_removed_users_sockets(group, alice, bob):
    bobs = await listen(inbox_group(bob.pk))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(alice)}")
    reply = await sync_to_async(client.delete)(
        f"/api/conversations/{group.pk}/members/{bob.pk}/"
    )
    assert reply.status_code == 204
    (leave,) = bobs.typed()  # first: bob's sockets leave the conversation
    assert leave == {
        "type": "messenger.membership",
        "conversation_id": str(group.pk),
        "user_id": bob.pk,
        "joined": False,
        "member_ids": [],
    }
    (removed,) = bobs.frames()
    assert removed["type"] == "member.removed"
    assert removed["payload"] == {"conversation_id": str(group.pk), "user_id": bob.pk}
