"""The messenger's knobs, each with its one default (``realtime.conf``)."""

from __future__ import annotations

from typing import Any

from realtime.conf import AppSettings, Knob

messenger_settings = AppSettings(
    [
        # A long chat message, not a document.
        Knob("MESSENGER_MAX_CONTENT", 4000, "int", minimum=1, doc="characters"),
        # A send is one broadcast and one activity event whatever the size; a member
        # add or a delete still writes to every member's devices.
        Knob("MESSENGER_MAX_MEMBERS", 5000, "int", minimum=2, doc="members of a group"),
        Knob("MESSENGER_PAGE_SIZE", 50, "int", minimum=1, doc="messages per page"),
        Knob("MESSENGER_MAX_PAGE_SIZE", 200, "int", minimum=1, doc="largest ?limit="),
        Knob("MESSENGER_SEARCH_LIMIT", 50, "int", minimum=1, doc="matches returned"),
        # Bounds a replaying socket's memory, not how far back it may go.
        Knob("MESSENGER_REPLAY_BATCH", 500, "int", minimum=1, doc="rows per query"),
        # Cross-process reordering settles in milliseconds; then a hole is read back.
        Knob("MESSENGER_GAP_WAIT", 0.5, "float", minimum=0.01, doc="seconds"),
        # Presence is told in direct conversations and groups up to this size.
        Knob("MESSENGER_PRESENCE_MAX_GROUP", 50, "int", minimum=2, doc="members"),
        # How often a process checks that the contacts its sockets were told are
        # online still are (a server that died takes its devices offline).
        Knob("MESSENGER_PRESENCE_SWEEP", 5.0, "float", minimum=0.05, doc="seconds"),
        # Per socket: generous for people, a wall for scripts.
        Knob(
            "MESSENGER_THROTTLES",
            {
                "message.send": (60, 10.0),
                "message.edit": (30, 10.0),
                "message.delete": (30, 10.0),
                "message.react": (60, 10.0),
                "message.read": (60, 10.0),
                "typing": (5, 1.0),
                "conversation.subscribe": (30, 10.0),
            },
            "rates",
            doc="per socket",
        ),
    ]
)


def knob(name: str) -> Any:
    return getattr(messenger_settings, name)
