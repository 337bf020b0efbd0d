"""The one place that builds group names: ``<kind>.<id>``, ASCII, under 100 chars."""

from __future__ import annotations

import re

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def group_name(kind: str, ident: object) -> str:
    """``<kind>.<ident>``, or ``ValueError`` when ``ident`` is not a safe id.

    Endpoints that own a kind of group (``realtime.copilot.groups``) build it here.
    """
    if ident is None or isinstance(ident, bool):  # str(None) would pass the pattern
        raise ValueError(f"invalid {kind} id for a group name: {ident!r}")
    text = str(ident)
    if not _ID_RE.match(text):
        raise ValueError(f"invalid {kind} id for a group name: {text!r}")
    return f"{kind}.{text}"


def session_group(session_id: object) -> str:
    """Every socket of one live session or conversation."""
    return group_name("session", session_id)


def session_hosts_group(session_id: object) -> str:
    """The host's sockets of one live session (moderation queue)."""
    return group_name("hosts", session_id)


def user_group(user_id: object) -> str:
    """Every socket (device, tab) of one user, on every server process."""
    return group_name("user", user_id)


def stream_group(stream_id: object) -> str:
    """Every viewer of one camera stream."""
    return group_name("stream", stream_id)
