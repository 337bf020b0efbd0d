"""The pages' sign-in: any active user, not only staff (the admin's form)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_an_ordinary_user_signs_in_and_goes_where_they_were_going(client, make_user):
    make_user("dana")
    page = client.get("/accounts/login/?next=/messenger/")
    assert page.status_code == 200 and b'name="username"' in page.content
    reply = client.post(
        "/accounts/login/",
        {"username": "dana", "password": "pw-Secret-123", "next": "/messenger/"},
    )
    assert reply.status_code == 302 and reply["Location"] == "/messenger/"
    assert client.get("/messenger/").status_code == 200


def test_a_wrong_password_is_told_and_signs_nobody_in(client, make_user):
    make_user("dana")
    reply = client.post("/accounts/login/", {"username": "dana", "password": "nope"})
    assert reply.status_code == 200 and b"did not match" in reply.content
    assert client.get("/messenger/").status_code == 302
