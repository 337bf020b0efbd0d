"""The copilot console page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_gets_a_token_field(client):
    page = client.get("/copilot/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="token"' in html
    assert '<script type="module" src="/static/js/copilot.js">' in html
    assert "csrftoken" in page.cookies  # for the ticket POST once signed in


def test_signed_in_user_connects_with_a_ticket(client, user):
    client.force_login(user)
    html = client.get("/copilot/").content.decode()
    assert 'id="token"' not in html
    assert "Signed in as <strong>alice</strong>" in html


def test_the_script_is_served(client):
    script = client.get("/static/js/copilot.js")
    assert script.status_code == 200
    body = b"".join(script.streaming_content) if script.streaming else script.content
    assert b'const PATH = "/ws/copilot/"' in body
