"""The messenger's knobs, each read from settings where used (tests override them)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "MESSENGER_MAX_CONTENT": 4000,  # characters: a long chat message, not a document
    "MESSENGER_MAX_MEMBERS": 500,  # a group's members: every send pushes one activity
    # frame per member, so this bounds the fan-out of one message
    "MESSENGER_PAGE_SIZE": 50,  # messages per REST page by default
    "MESSENGER_MAX_PAGE_SIZE": 200,
    "MESSENGER_SEARCH_LIMIT": 50,  # newest matches returned by one search
    "MESSENGER_REPLAY_BATCH": 500,  # rows per query when a socket replays since a seq
}


def knob(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
