"""Group names of the messenger: ``conversation.<uuid>``, ``activity.<uuid>``,
``inbox.<user id>``; ASCII, never user text (the rules of ``realtime.groups``).
"""

from __future__ import annotations

import re
import uuid

from realtime.groups import group_name

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def conversation_group(conversation_id: object) -> str:
    """Every socket subscribed to one conversation, on every server process."""
    if isinstance(conversation_id, uuid.UUID):
        text = str(conversation_id)
    elif isinstance(conversation_id, str) and _UUID_RE.match(conversation_id):
        text = conversation_id
    else:
        raise ValueError(f"invalid conversation id for a group: {conversation_id!r}")
    return f"conversation.{text}"


def activity_group(conversation_id: object) -> str:
    """A conversation's members' sockets that are online but not subscribed to it:
    they hear of each new message (``conversation.activity``), not its content."""
    return "activity." + conversation_group(conversation_id).partition(".")[2]


def inbox_group(user_id: object) -> str:
    """Every messenger socket of one user (each device), on every server process:
    membership changes, unread counts, contacts' presence. Not ``user.<id>``: the
    user's other endpoints (echo) must not hear the messenger."""
    return group_name("inbox", user_id)
