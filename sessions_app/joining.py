"""The steps of a socket's join that are not the consumer's: who it is, ``since``,
the replay.

Called by ``SessionConsumer.on_connect``; the database steps run in the database
thread (``to_database_thread``), one trip each. The session and participant
rows come from the process's caches (``sessions_app.joincache``) when they hold them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from realtime.auth import AuthResult
from realtime.consumers import CloseConnection
from realtime.dbthread import to_database_thread
from realtime.protocol import CloseCode, InvalidMessage
from sessions_app.codes import code_normalise
from sessions_app.frames import message_frame
from sessions_app.joincache import cached, participants, sessions
from sessions_app.models import Participant, Session
from sessions_app.selectors import (
    REPLAY_BATCH,
    participant_get,
    session_get,
    session_messages,
)
from sessions_app.services import participant_for_user

_SINCE_RE = re.compile(r"^[0-9]{1,15}$")


class _NotCached(Exception):
    """A row the join needs is not in this process's caches: read it."""


def _not_cached() -> None:
    raise _NotCached


async def asession_entry(*, code: str, auth: AuthResult) -> tuple[Session, Participant]:
    """``session_entry`` on the event loop when the caches hold both rows (a
    reconnect: no trip to the database thread), else on the database thread."""
    try:
        return session_entry(code=code, auth=auth, cached_only=True)
    except _NotCached:
        return await to_database_thread(session_entry)(code=code, auth=auth)


def session_entry(
    *, code: str, auth: AuthResult, cached_only: bool = False
) -> tuple[Session, Participant]:
    """The session and who this socket is in it (database thread, or anywhere with
    ``cached_only``: then a row not cached raises ``_NotCached`` and nothing is read).

    Closes 4004 (unknown code), 4010 (closed), 4005 (not a participant: a guest's
    token for another session, or a participant that is gone).
    """
    miss = _not_cached if cached_only else None
    session = _session(code, miss)
    if session is None:
        raise CloseConnection(CloseCode.NOT_FOUND)
    if not session.is_open:
        raise CloseConnection(CloseCode.SESSION_CLOSED)
    claims = auth.claims
    if claims:
        if claims.get("kind") != "participant" or claims.get("session") != (
            session.code
        ):
            raise CloseConnection(CloseCode.FORBIDDEN)
        found = _guest(session, claims.get("pid"), miss)
        if found is None:
            raise CloseConnection(CloseCode.FORBIDDEN)
        return session, found
    if not auth.user.is_authenticated:  # pragma: no cover - auth_required
        raise CloseConnection(CloseCode.NO_CREDENTIAL)
    user = auth.user
    return session, cached(
        participants,
        ("user", session.pk, user.pk),
        miss or (lambda: participant_for_user(session=session, user=user)),
    )


Miss = Callable[[], None] | None  # called instead of reading, if given


def _session(code: str, miss: Miss = None) -> Session | None:
    normalised = code_normalise(code)
    if normalised is None:
        return None
    return cached(
        sessions,
        (normalised, Session.Kind.LIVE),
        miss or (lambda: session_get(code=normalised)),
    )


def _guest(session: Session, pid: object, miss: Miss = None) -> Participant | None:
    if not isinstance(pid, int) or isinstance(pid, bool):
        return None
    return cached(
        participants,
        ("pid", session.pk, pid),
        miss or (lambda: participant_get(session_id=session.pk, participant_id=pid)),
    )


def since_from_query(query_string: bytes) -> tuple[int | None, InvalidMessage | None]:
    """``?since=<seq>``: the seq, or the error to send (and nothing replayed)."""
    query = parse_qs(query_string.decode("latin1"))
    if "since" not in query:
        return None, None
    raw = query["since"][0]
    if not _SINCE_RE.match(raw):
        return None, InvalidMessage(
            "query.since: must be a non-negative integer; nothing was replayed"
        )
    return int(raw), None


async def replay(
    send_frame: Callable[..., Awaitable[None]],
    *,
    session_id: int,
    since: int,
    upto: int,
) -> None:
    """Send the stored messages after ``since`` up to ``upto``, in seq order, read
    in batches (memory is bounded, not the total)."""
    after = since
    while after < upto:
        rows = await to_database_thread(session_messages)(
            session_id=session_id, after=after, upto=upto, limit=REPLAY_BATCH
        )
        for message in rows:
            await send_frame(*message_frame(message))
        if len(rows) < REPLAY_BATCH:
            return
        after = rows[-1].seq
