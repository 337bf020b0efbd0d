"""Reads of the live-session feature: sessions, history, and who is online."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Model, QuerySet

from realtime.groups import session_group
from realtime.presence import aroom_members, room_members
from sessions_app.codes import code_normalise
from sessions_app.models import Message, Participant, Session
from sessions_app.sql import column, table

REPLAY_BATCH = 500  # rows per query when replaying; bounds memory, not the total


def session_get(*, code: str, kind: str = Session.Kind.LIVE) -> Session | None:
    """The session with this code (case-insensitive), or ``None``."""
    normalised = code_normalise(code)
    if normalised is None:
        return None
    return _first(Session, _by_code(), [normalised, kind])


def session_list_hosted(*, user: Any) -> QuerySet[Session]:
    return Session.objects.filter(host=user, kind=Session.Kind.LIVE)


def participant_get(*, session_id: int, participant_id: Any) -> Participant | None:
    if not isinstance(participant_id, int) or isinstance(participant_id, bool):
        return None
    return _first(
        Participant, _participant_in_session("id"), [participant_id, session_id]
    )


def participant_of_user(*, session_id: int, user_id: Any) -> Participant | None:
    """A signed-in user's row in a session (a first connect makes it:
    ``services.participant_for_user``)."""
    user = Participant._meta.get_field("user").get_db_prep_value(user_id, connection)
    return _first(Participant, _participant_in_session("user"), [user, session_id])


# Every socket's join runs these three statements (sessions_app.sql says why they are
# written out), each built once; ``raw()`` still makes model objects the ORM's way.
@functools.cache
def _by_code() -> str:
    return (
        f"SELECT * FROM {table(Session)} "  # noqa: S608
        f"WHERE {column(Session, 'code')} = %s AND {column(Session, 'kind')} = %s"
    )


@functools.cache
def _participant_in_session(by: str) -> str:
    """A participant by its ``id``, or by its ``user``, and its session."""
    return (
        f"SELECT * FROM {table(Participant)} "  # noqa: S608
        f"WHERE {column(Participant, by)} = %s "
        f"AND {column(Participant, 'session')} = %s"
    )


@functools.cache
def _backlog_sql(own: bool) -> str:
    """``session_backlog``'s statement; ``own``: one participant's questions only."""
    mine = f"AND m.{column(Message, 'participant')} = %s" if own else ""
    return (
        f"SELECT s.{column(Session, 'last_seq')}, "  # noqa: S608
        f"s.{column(Session, 'status')}, EXISTS ("
        f"SELECT 1 FROM {table(Message)} m "
        f"WHERE m.{column(Message, 'session')} = s.{column(Session, 'id')} "
        f"AND m.{column(Message, 'kind')} = %s "
        f"AND m.{column(Message, 'approved')} = %s "
        f"AND m.{column(Message, 'hidden')} = %s {mine}) "
        f"FROM {table(Session)} s WHERE s.{column(Session, 'id')} = %s"
    )


def _first(model: type[Model], sql: str, params: list) -> Any:
    return next(iter(model.objects.raw(sql, params)), None)


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


@dataclass(frozen=True)
class Backlog:
    """What a connecting socket is sent after its welcome: the session's ``last_seq``
    (the replay's end) and the pending questions it may see."""

    last_seq: int
    pending_questions: list[Message]
    is_open: bool = True  # read fresh: the join's cached row may be older


def session_backlog(*, session_id: int, participant_id: int | None = None) -> Backlog:
    """``last_seq``, then the pending questions (all, or ``participant_id``'s own).

    One trip to the database thread for both. The order matters: a question approved
    between the two reads takes a seq above ``last_seq`` (it comes live, as
    ``question.asked``) and is no longer pending. Read the other way round, it could be
    listed as pending with its seq under ``last_seq``, so that its live
    ``question.asked`` is dropped as already sent.
    """
    # One statement reads both last_seq and whether anything is pending: one
    # snapshot, so the order above holds; the questions themselves are read only if
    # there are any (most sessions have none).
    own = participant_id is not None
    with connection.cursor() as cursor:
        cursor.execute(
            _backlog_sql(own),
            [Message.Kind.QUESTION, False, False]
            + ([participant_id] if own else [])
            + [session_id],
        )
        row = cursor.fetchone()
    if row is None:  # deleted since the join read it
        return Backlog(last_seq=0, pending_questions=[], is_open=False)
    last_seq, status, any_pending = row
    pending = (
        session_pending_questions(session_id=session_id, participant_id=participant_id)
        if any_pending
        else []
    )
    return Backlog(
        last_seq=last_seq,
        pending_questions=pending,
        is_open=status == Session.Status.OPEN,
    )


# ----------------------------------------------------------------------- presence
def session_connections(*, session_id: int) -> dict[str, dict]:
    """Live connections in the session's room: ``{conn_id: info}``."""
    return room_members(session_group(session_id))


async def asession_connections(*, session_id: int) -> dict[str, dict]:
    """``session_connections`` on the event loop (Redis through its asyncio client)."""
    return await aroom_members(session_group(session_id))


def _participant_ids(connections: dict[str, dict]) -> set[int]:
    ids = {info.get("participant_id") for info in connections.values()}
    ids.discard(None)
    return ids


async def asession_online_ids(*, session_id: int) -> set[int]:
    """The ids of the participants with at least one live connection in the room
    (on the event loop)."""
    return _participant_ids(await asession_connections(session_id=session_id))


def session_online_by_id(
    *,
    session_id: int,
    connections: dict[str, dict] | None = None,
    but: str | None = None,
) -> dict[int, dict[str, Any]]:
    """Online participants by id, one entry each however many tabs, in joining order;
    ``but``: leave that connection out.

    Straight from presence, where each socket of the room is entered with its
    participant's payload (``participant_id``, ``nickname``, ``role``): a join reads
    no rows, and the entries are those payloads, not copies (callers never change
    them). When tabs disagree (a rename), the most recently entered one wins.
    """
    if connections is None:
        connections = session_connections(session_id=session_id)
    online: dict[int, dict[str, Any]] = {}
    for conn_id, info in connections.items():
        participant_id = info.get("participant_id")
        if participant_id is not None and conn_id != but:
            online[participant_id] = info
    return online


async def asession_online_by_id(
    *, session_id: int, but: str | None = None
) -> dict[int, dict[str, Any]]:
    """``session_online_by_id`` on the event loop."""
    connections = await asession_connections(session_id=session_id)
    return session_online_by_id(session_id=session_id, connections=connections, but=but)


def welcome_online(
    online: dict[int, dict[str, Any]], *, you_id: int, limit: int
) -> list[dict[str, Any]]:
    """The welcome's ``online`` list: everyone online, in joining order; in a room
    of more than ``limit``, only you, the hosts and the most recently joined, so that
    a welcome stays small however big the class (its ``online_count`` has the size).
    """
    if len(online) <= limit:
        return list(online.values())
    picked = {pid for pid, entry in online.items() if entry.get("role") == "host"}
    picked.add(you_id)
    for pid in reversed(online):
        if len(picked) >= limit:
            break
        picked.add(pid)
    return [entry for pid, entry in online.items() if pid in picked]


def session_online_participants(
    *, session_id: int, connections: dict[str, dict] | None = None
) -> list[dict[str, Any]]:
    """``session_online_by_id``'s entries, in joining order."""
    return list(
        session_online_by_id(session_id=session_id, connections=connections).values()
    )


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
