"""Group names of the messenger: ``conversation.<uuid>``, ASCII, never user text.

Built by the same rules as ``realtime.groups`` (which builds ``user.<id>``).
"""

from __future__ import annotations

import re
import uuid

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
