"""The messenger page and the names it may show."""

from __future__ import annotations

import json

import pytest

from sessions_app.messenger import services

pytestmark = pytest.mark.django_db


def _body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def test_a_visitor_is_sent_to_sign_in(client):
    page = client.get("/messenger/")
    assert page.status_code == 302
    assert page["Location"] == "/accounts/login/?next=/messenger/"
    names = client.get("/messenger/names/")
    assert names.status_code == 302


def test_the_page_names_only_the_user_and_their_contacts(client, alice, bob, carol):
    services.conversation_create(user=alice, member_ids=[bob.pk])
    client.force_login(alice)
    page = client.get("/messenger/")
    assert page.status_code == 200
    assert "csrftoken" in page.cookies  # for ticket and REST POSTs
    html = page.content.decode()
    assert f'data-user-id="{alice.pk}"' in html
    assert '<script type="module" src="/static/js/messenger.js">' in html
    start = html.index('<script id="user-names" type="application/json">')
    names = json.loads(html[start:].split(">", 1)[1].split("</script>", 1)[0])
    assert names == {str(alice.pk): "alice", str(bob.pk): "bob"}  # not carol


def test_names_are_asked_again_when_a_new_contact_appears(client, alice, bob, carol):
    client.force_login(carol)
    assert client.get("/messenger/names/").json() == {str(carol.pk): "carol"}
    services.conversation_create(
        user=alice, member_ids=[bob.pk, carol.pk], kind="group", title="Team"
    )
    assert client.get("/messenger/names/").json() == {
        str(alice.pk): "alice",
        str(bob.pk): "bob",
        str(carol.pk): "carol",
    }
    assert client.post("/messenger/names/").status_code == 405


def test_the_home_page_links_it(client):
    assert b'<a href="/messenger/">Messenger</a>' in client.get("/").content


def test_the_script_and_style_are_served(client):
    script = _body(client.get("/static/js/messenger.js"))
    assert b'const PATH = "/ws/messenger/"' in script
    assert client.get("/static/css/site.css").status_code == 200
