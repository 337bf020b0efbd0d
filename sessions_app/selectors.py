"""Reads of the live-session feature: sessions, history, and who is online."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from realtime.groups import session_group
from realtime.presence import room_members
from sessions_app.codes import code_normalise
from sessions_app.models import Message, Participant, Session

REPLAY_BATCH = 500  # rows per query when replaying; bounds memory, not the total


def session_get(*, code: str, kind: str = Session.Kind.LIVE) -> Session | None:
    """The session with this code (case-insensitive), or ``None``."""
    normalised = code_normalise(code)
    if normalised is None:
        return None
    return Session.objects.filter(code=normalised, kind=kind).first()


def session_list_hosted(*, user: Any) -> QuerySet[Session]:
    return Session.objects.filter(host=user, kind=Session.Kind.LIVE)


def participant_get(*, session_id: int, participant_id: Any) -> Participant | None:
    if not isinstance(participant_id, int) or isinstance(participant_id, bool):
        return None
    return Participant.objects.filter(pk=participant_id, session_id=session_id).first()


def session_messages(
    *,
    session_id: int,
    after: int = 0,
    upto: int | None = None,
    limit: int | None = None,
) -> list[Message]:
    """Stored messages with ``after < seq <= upto``, in seq order (hidden included,
    as tombstones when turned into frames; pending questions have no seq: excluded)."""
    rows = Message.objects.filter(session_id=session_id, seq__gt=after)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    rows = rows.order_by("seq")
    if limit is not None:
        rows = rows[:limit]
    return list(rows)


def session_last_seq(*, session_id: int) -> int:
    return Session.objects.values_list("last_seq", flat=True).get(pk=session_id)


def session_pending_questions(
    *, session_id: int, participant_id: int | None = None
) -> list[Message]:
    """Questions waiting for the host's approval, oldest first; with
    ``participant_id``, only that participant's own."""
    rows = Message.objects.filter(
        session_id=session_id,
        kind=Message.Kind.QUESTION,
        approved=False,
        hidden=False,
    )
    if participant_id is not None:
        rows = rows.filter(participant_id=participant_id)
    return list(rows.order_by("created_at", "id"))


# ----------------------------------------------------------------------- presence
def session_connections(*, session_id: int) -> dict[str, dict]:
    """Live connections in the session's room: ``{conn_id: info}``."""
    return room_members(session_group(session_id))


def participant_connection_count(*, session_id: int, participant_id: int) -> int:
    """How many live connections (tabs, devices) this participant has in the room."""
    return sum(
        1
        for info in session_connections(session_id=session_id).values()
        if info.get("participant_id") == participant_id
    )


def _participant_ids(connections: dict[str, dict]) -> set[int]:
    ids = {info.get("participant_id") for info in connections.values()}
    ids.discard(None)
    return ids


def session_online_participants(
    *, session_id: int, connections: dict[str, dict] | None = None
) -> list[dict[str, Any]]:
    """Online participants, one entry each however many tabs, in joining order.

    Straight from presence, which holds each socket's participant id, nickname and
    role: a join reads no rows, so N joins cost O(N) reads, not O(N) queries each.
    When tabs disagree (a rename), the most recently entered one wins.
    """
    if connections is None:
        connections = session_connections(session_id=session_id)
    online: dict[int, dict[str, Any]] = {}
    for info in connections.values():
        participant_id = info.get("participant_id")
        if participant_id is not None:
            online[participant_id] = {
                "participant_id": participant_id,
                "nickname": info.get("nickname"),
                "role": info.get("role"),
            }
    return list(online.values())


def session_online_count(*, session_id: int) -> int:
    return len(_participant_ids(session_connections(session_id=session_id)))


def session_status(*, session: Session) -> dict[str, Any]:
    """``GET /api/sessions/<code>/status/`` (docs/protocol.md §5)."""
    connections = session_connections(session_id=session.pk)
    online = session_online_participants(session_id=session.pk, connections=connections)
    return {
        "session_code": session.code,
        "status": session.status,
        "online_participants": online,
        "online_count": len(online),
        "online_connections": len(connections),
        "total_participants": session.participants.count(),
        "last_seq": session.last_seq,
    }
