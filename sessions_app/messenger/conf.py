"""The messenger's knobs, each with its one default (``realtime.conf``)."""

from __future__ import annotations

from typing import Any

from realtime.conf import AppSettings, Knob

messenger_settings = AppSettings(
    [
        # A long chat message, not a document.
        Knob("MESSENGER_MAX_CONTENT", 4000, "int", minimum=1, doc="characters"),
        # Every send pushes one activity frame per member: this bounds one fan-out.
        Knob("MESSENGER_MAX_MEMBERS", 500, "int", minimum=2, doc="members of a group"),
        Knob("MESSENGER_PAGE_SIZE", 50, "int", minimum=1, doc="messages per page"),
        Knob("MESSENGER_MAX_PAGE_SIZE", 200, "int", minimum=1, doc="largest ?limit="),
        Knob("MESSENGER_SEARCH_LIMIT", 50, "int", minimum=1, doc="matches returned"),
        # Bounds a replaying socket's memory, not how far back it may go.
        Knob("MESSENGER_REPLAY_BATCH", 500, "int", minimum=1, doc="rows per query"),
    ]
)


def knob(name: str) -> Any:
    return getattr(messenger_settings, name)
