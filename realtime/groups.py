"""The one place that builds group names: ``<kind>.<id>``, ASCII, under 100 chars."""

from __future__ import annotations

import re

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def _group(kind: str, ident: object) -> str:
    if ident is None or isinstance(ident, bool):  # str(None) would pass the pattern
        raise ValueError(f"invalid {kind} id for a group name: {ident!r}")
    text = str(ident)
    if not _ID_RE.match(text):
        raise ValueError(f"invalid {kind} id for a group name: {text!r}")
    return f"{kind}.{text}"


def session_group(session_id: object) -> str:
    """Every socket of one live session or conversation."""
    return _group("session", session_id)


def session_hosts_group(session_id: object) -> str:
    """The host's sockets of one live session (moderation queue)."""
    return _group("hosts", session_id)


def user_group(user_id: object) -> str:
    """Every socket (device, tab) of one user, on every server process."""
    return _group("user", user_id)


def copilot_group(user_id: object) -> str:
    """The copilot sockets of one user, on every server process (single session).

    Not ``user.<id>``: that group holds the user's other sockets too, which a 4009
    must not close.
    """
    return _group("copilot", user_id)


def stream_group(stream_id: object) -> str:
    """Every viewer of one camera stream."""
    return _group("stream", stream_id)
