"""The messenger's REST API: every endpoint, its status codes, and who may."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from realtime.tokens import scoped_token_issue
from sessions_app.messenger import services
from sessions_app.messenger.models import ConversationMessage
from tests.conftest import access_token

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


@pytest.fixture
def as_alice(alice):
    return client_for(alice)


@pytest.fixture
def as_bob(bob):
    return client_for(bob)


@pytest.fixture
def as_carol(carol):
    return client_for(carol)


def url(conversation, *rest) -> str:
    return "/".join([f"/api/conversations/{conversation.pk}", *map(str, rest), ""])


def post_message(client, conversation, content="hi", **extra):
    return client.post(
        url(conversation, "messages"), {"content": content, **extra}, format="json"
    )


def test_anonymous_and_guest_tokens_are_refused(group):
    assert APIClient().get("/api/conversations/").status_code == 401
    guest = APIClient()
    token = scoped_token_issue(
        {"kind": "participant", "pid": 1, "session": "X"}, ttl=60
    )
    guest.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert guest.get("/api/conversations/").status_code == 401
    assert guest.get(url(group)).status_code == 401


def test_create_list_and_get(as_alice, as_bob, alice, bob, carol):
    reply = as_alice.post(
        "/api/conversations/", {"member_ids": [bob.pk]}, format="json"
    )
    assert reply.status_code == 201
    body = reply.json()
    assert body["kind"] == "direct" and body["member_ids"] == sorted([alice.pk, bob.pk])
    again = as_bob.post(
        "/api/conversations/", {"member_ids": [alice.pk]}, format="json"
    )
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    group = as_alice.post(
        "/api/conversations/",
        {"title": "Team", "member_ids": [bob.pk, carol.pk]},
        format="json",
    )
    assert group.status_code == 201 and group.json()["role"] == "owner"
    listed = as_bob.get("/api/conversations/").json()
    assert {c["id"] for c in listed} == {body["id"], group.json()["id"]}
    detail = as_bob.get(f"/api/conversations/{body['id']}/").json()
    assert detail["unread"] == 0 and detail["last_message"] is None
    assert detail["role"] == "member" and detail["ws_path"] == "/ws/messenger/"
    bad = as_alice.post("/api/conversations/", {"member_ids": [999999]}, format="json")
    assert bad.status_code == 400 and "member_ids" in bad.json()
    bad = as_alice.post("/api/conversations/", {"member_ids": "x"}, format="json")
    assert bad.status_code == 400


def test_a_stranger_gets_404_everywhere(group, alice, as_carol, carol):
    message, _ = services.message_send(
        conversation_id=group.pk, user=alice, content="x"
    )
    calls = [
        ("get", url(group), None),
        ("patch", url(group), {"title": "x"}),
        ("delete", url(group), None),
        ("post", url(group, "members"), {"user_id": carol.pk}),
        ("delete", url(group, "members", alice.pk), None),
        ("get", url(group, "messages"), None),
        ("post", url(group, "messages"), {"content": "x"}),
        ("patch", url(group, "messages", message.pk), {"content": "x"}),
        ("delete", url(group, "messages", message.pk), None),
        ("post", url(group, "messages", message.pk, "reactions"), {"emoji": "x"}),
        ("post", url(group, "read"), {"message_id": message.pk}),
        ("get", url(group, "notifications"), None),
        ("put", url(group, "notifications"), {"muted": True}),
    ]
    for method, path, data in calls:
        reply = getattr(as_carol, method)(path, data, format="json")
        assert reply.status_code == 404, (method, path, reply.content)
    assert as_carol.get("/api/conversations/not-a-uuid/").status_code == 404


def test_owner_edits_and_deletes_the_group(group, as_alice, as_bob):
    assert as_bob.patch(url(group), {"title": "B"}, format="json").status_code == 403
    too_long = as_alice.patch(url(group), {"title": "x" * 201}, format="json")
    assert too_long.status_code == 400 and "title" in too_long.json()
    renamed = as_alice.patch(url(group), {"title": "Renamed"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"
    assert as_bob.delete(url(group)).status_code == 403
    assert as_alice.delete(url(group)).status_code == 204
    assert as_alice.get(url(group)).status_code == 404


def test_direct_conversations_refuse_group_changes_with_409(alice, bob, as_alice):
    direct, _ = services.conversation_create(user=alice, member_ids=[bob.pk])
    assert as_alice.patch(url(direct), {"title": "x"}, format="json").status_code == 409


def test_members_add_and_remove(group, as_alice, as_bob, as_carol, bob, carol):
    path = url(group, "members")
    assert as_bob.post(path, {"user_id": carol.pk}, format="json").status_code == 403
    added = as_alice.post(path, {"user_id": carol.pk}, format="json")
    assert added.status_code == 201 and added.json()["user_id"] == carol.pk
    again = as_alice.post(path, {"user_id": carol.pk}, format="json")
    assert again.status_code == 200
    assert as_alice.post(path, {"user_id": 999999}, format="json").status_code == 400
    assert as_alice.post(path, {}, format="json").status_code == 400
    assert as_bob.delete(url(group, "members", carol.pk)).status_code == 403
    assert as_carol.delete(url(group, "members", carol.pk)).status_code == 204
    assert as_carol.get(url(group)).status_code == 404
    assert as_alice.delete(url(group, "members", carol.pk)).status_code == 404


def test_send_retry_and_history_pages(group, as_alice, as_bob):
    first = post_message(as_alice, group, "one", client_id="c1")
    assert first.status_code == 201
    retry = post_message(as_alice, group, "one", client_id="c1")
    assert retry.status_code == 200 and retry.json() == first.json()
    assert post_message(as_alice, group, "  ").status_code == 400
    assert post_message(as_alice, group, "x", reply_to=10**9).status_code == 400
    for i in range(2, 6):
        post_message(as_bob, group, f"m{i}", reply_to=first.json()["message_id"])
    assert ConversationMessage.objects.filter(conversation=group).count() == 5

    newest = as_alice.get(url(group, "messages") + "?limit=2").json()
    assert [m["seq"] for m in newest["results"]] == [4, 5]
    assert newest["next"] is None and newest["last_seq"] == 5
    older = as_alice.get(newest["previous"]).json()
    assert [m["seq"] for m in older["results"]] == [2, 3]
    oldest = as_alice.get(older["previous"]).json()
    assert [m["seq"] for m in oldest["results"]] == [1]
    assert oldest["previous"] is None
    forward = as_alice.get(url(group, "messages") + "?after=0&limit=3").json()
    assert [m["seq"] for m in forward["results"]] == [1, 2, 3]
    assert forward["previous"] is None
    rest = as_alice.get(forward["next"]).json()
    assert [m["seq"] for m in rest["results"]] == [4, 5] and rest["next"] is None
    assert rest["previous"] is not None
    message = rest["results"][0]
    assert message["reply_to"] == first.json()["message_id"]
    assert message["reactions"] == {} and message["content"] == "m4"
    for bad in ("?limit=0", "?limit=201", "?after=-1", "?before=x"):
        assert as_alice.get(url(group, "messages") + bad).status_code == 400


def test_edit_delete_react_and_read(group, alice, as_alice, as_bob, bob):
    sent = post_message(as_alice, group, "v1").json()
    path = url(group, "messages", sent["message_id"])
    assert as_bob.patch(path, {"content": "x"}, format="json").status_code == 403
    assert as_alice.patch(path, {"content": ""}, format="json").status_code == 400
    edited = as_alice.patch(path, {"content": "v2"}, format="json")
    assert edited.status_code == 200
    assert edited.json()["content"] == "v2" and edited.json()["edited_at"]
    react = as_bob.post(path + "reactions/", {"emoji": "👍"}, format="json")
    assert react.status_code == 200
    assert react.json() == {
        "conversation_id": str(group.pk),
        "message_id": sent["message_id"],
        "reactions": {"👍": 1},
        "added": True,
    }
    assert (
        as_bob.post(path + "reactions/", {"emoji": ""}, format="json").status_code
        == 400
    )
    page = as_bob.get(url(group, "messages")).json()
    assert page["results"][0]["reactions"] == {"👍": 1}

    read = as_bob.post(url(group, "read"), {"message_id": sent["message_id"]})
    assert read.status_code == 200
    assert read.json()["last_read_seq"] == 1 and read.json()["moved"] is True
    again = as_bob.post(url(group, "read"), {"seq": 1}, format="json")
    assert again.json()["moved"] is False
    assert as_bob.post(url(group, "read"), {}, format="json").status_code == 400

    assert as_bob.delete(path).status_code == 403
    assert as_alice.delete(path).status_code == 204
    gone = as_alice.get(url(group, "messages")).json()["results"][0]
    assert gone["content"] == "" and gone["deleted_at"] and gone["seq"] == 1
    assert as_alice.patch(path, {"content": "back"}, format="json").status_code == 409


def test_notifications(group, as_bob):
    path = url(group, "notifications")
    assert as_bob.get(path).json() == {"muted": False}
    assert as_bob.put(path, {"muted": True}, format="json").json() == {"muted": True}
    assert as_bob.get(path).json() == {"muted": True}
    assert as_bob.get(url(group)).json()["muted"] is True
    assert as_bob.put(path, {}, format="json").status_code == 400


def test_search(group, alice, as_bob, as_carol):
    services.message_send(conversation_id=group.pk, user=alice, content="lunch today")
    found = as_bob.get("/api/search/messages/?q=LUNCH").json()["results"]
    assert [m["content"] for m in found] == ["lunch today"]
    assert as_carol.get("/api/search/messages/?q=lunch").json() == {"results": []}
    assert as_bob.get("/api/search/messages/").status_code == 400


def test_the_schema_documents_every_route(staff):
    client = APIClient()
    client.force_authenticate(staff)
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for path in (
        "/api/conversations/",
        "/api/conversations/{conversation_id}/",
        "/api/conversations/{conversation_id}/members/",
        "/api/conversations/{conversation_id}/members/{user_id}/",
        "/api/conversations/{conversation_id}/messages/",
        "/api/conversations/{conversation_id}/messages/{message_id}/",
        "/api/conversations/{conversation_id}/messages/{message_id}/reactions/",
        "/api/conversations/{conversation_id}/read/",
        "/api/conversations/{conversation_id}/notifications/",
        "/api/search/messages/",
    ):
        assert path in paths, path
    messages = paths["/api/conversations/{conversation_id}/messages/"]
    assert {p["name"] for p in messages["get"]["parameters"]} >= {
        "after",
        "before",
        "limit",
    }
