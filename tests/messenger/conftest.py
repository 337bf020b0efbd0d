"""Helpers for messenger tests: users, conversations, and the frames pushed."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from sessions_app.messenger import notify, services


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def carol(make_user):
    return make_user("carol")


@pytest.fixture
def group(alice, bob):
    """A group of alice (owner) and bob."""
    conversation, _ = services.conversation_create(
        user=alice, member_ids=[bob.pk], kind="group", title="Team"
    )
    return conversation


class Pushed(list):
    """Every ``(group, frame, seq)`` broadcast, frames decoded (a typed event as
    ``{"type", "payload": the event}``).

    The test's own transaction never commits, so the after-commit callbacks the
    services registered (those of rolled-back savepoints are already gone) are run
    when the test looks, as a commit would have run them.
    """

    done = 0

    def flush(self) -> None:
        while self.done < len(connection.run_on_commit):
            callback = connection.run_on_commit[self.done][1]
            self.done += 1
            callback()

    def of(self, type_: str) -> list[tuple[str, dict, int | None]]:
        self.flush()
        return [(g, f["payload"], s) for g, f, s in self if f["type"] == type_]

    def types(self) -> list[str]:
        self.flush()
        return [f["type"] for _, f, _ in self]


@pytest.fixture
def pushed(monkeypatch):
    """The broadcasts the services push."""
    got = Pushed()
    got.done = len(connection.run_on_commit)

    async def record(group, text, *, exclude=None, seq=None):
        got.append((group, json.loads(text), seq))

    async def record_event(group, event):  # a typed event: its dict is the payload
        got.append((group, {"type": event["type"], "payload": event}, None))

    monkeypatch.setattr(notify, "broadcast", record)
    monkeypatch.setattr(notify, "publish_event", record_event)
    return got
