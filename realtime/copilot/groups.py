"""The copilot's group names, built with the toolkit's ``group_name``."""

from __future__ import annotations

from realtime.groups import group_name


def copilot_group(user_id: object) -> str:
    """The copilot sockets of one user, on every server process (single session).

    Not ``user.<id>``: that group holds the user's other sockets too, which a 4009
    must not close.
    """
    return group_name("copilot", user_id)
