"""Writes of the live-session feature: the one place that changes sessions and messages.

Every function is synchronous, keyword-only and commits before it returns, so callers
broadcast only what is stored (``sessions_app.notify``). Refusals are domain errors
(``realtime.errors``: ``Invalid``, ``NotFound``, ``PermissionDenied``), which the socket
answers as ``error`` frames and the REST API as 400/404/403.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from realtime.errors import Invalid, NotFound, PermissionDenied
from realtime.tokens import scoped_token_issue
from sessions_app.codes import code_generate
from sessions_app.conf import sessions_settings
from sessions_app.joincache import forget_participant, forget_session
from sessions_app.message_sql import message_sql
from sessions_app.models import (
    MAX_CONTENT,
    MAX_NICKNAME,
    MAX_TITLE,
    Message,
    Participant,
    QuestionVote,
    Session,
)
from sessions_app.participant_sql import participant_insert
from sessions_app.selectors import participant_of_user
from sessions_app.sql import insert_row

CODE_ATTEMPTS = 5  # 8.5e11 codes: a second attempt is already vanishingly rare


# Both are refusals the socket closes on (4010, 4005) rather than answers. A closed
# session is a 403, not a 409, on REST: the join API has always said so.
class SessionClosed(PermissionDenied):
    default_detail = "the session is closed"


class ParticipantGone(PermissionDenied):
    default_detail = "you are no longer a participant of this session"


class _Duplicate(Exception):
    """Raised inside the transaction to roll it back and return the original."""

    def __init__(self, message: Message) -> None:
        super().__init__("duplicate client_id")
        self.message = message


# ----------------------------------------------------------------------- cleaning
def nickname_clean(raw: str) -> str:
    """A display name: trimmed, inner whitespace collapsed, 1..40 printable chars.

    Raises ``ValueError``, not ``Invalid``: the socket's payload model runs this as a
    pydantic validator, and pydantic reports only a ``ValueError`` as a field error.
    Services call it through ``_nickname``.
    """
    nickname = " ".join(str(raw).split())
    if not nickname:
        raise ValueError("must not be blank")
    if len(nickname) > MAX_NICKNAME:
        raise ValueError(f"at most {MAX_NICKNAME} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in nickname):
        raise ValueError("must not contain control characters")
    return nickname


def content_clean(raw: str) -> str:
    """Chat or question text: kept as typed, 1..2000 characters, not blank."""
    if not raw.strip():
        raise Invalid("must not be blank", field="content")
    if len(raw) > MAX_CONTENT:
        raise Invalid(f"at most {MAX_CONTENT} characters", field="content")
    return raw


def title_clean(raw: str) -> str:
    title = " ".join(str(raw).split())
    if not title or len(title) > MAX_TITLE:
        raise Invalid(f"must be 1..{MAX_TITLE} characters", field="title")
    return title


def _nickname(raw: str) -> str:
    """``nickname_clean`` for services: its refusal as ``Invalid`` naming the field."""
    try:
        return nickname_clean(raw)
    except ValueError as exc:
        raise Invalid(str(exc), field="nickname") from None


def _nickname_for_user(user: Any) -> str:
    name = (user.get_full_name() or user.get_username() or "user").strip()
    try:
        return nickname_clean(name[:MAX_NICKNAME])
    except ValueError:
        return f"user{user.pk}"


def _require_host(by: Participant | None, session_id: int, what: str) -> None:
    """``by=None`` is staff acting through the admin; otherwise this session's host."""
    if by is not None and not (by.is_host and by.session_id == session_id):
        raise PermissionDenied(f"only the host may {what}")


# ----------------------------------------------------------------------- sessions
def session_create(
    *, host: Any, title: str, moderated: bool = False, kind: str = Session.Kind.LIVE
) -> Session:
    """A new open session with a fresh code; its host is its first participant."""
    title = title_clean(title)
    for attempt in range(CODE_ATTEMPTS):
        try:
            with transaction.atomic():
                session = Session.objects.create(
                    code=code_generate(),
                    title=title,
                    host=host,
                    moderated=moderated,
                    kind=kind,
                )
                Participant.objects.create(
                    session=session,
                    user=host,
                    nickname=_nickname_for_user(host),
                    role=Participant.Role.HOST,
                )
                return session
        except IntegrityError:
            if attempt == CODE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def session_update(
    *, session: Session, title: str | None = None, moderated: bool | None = None
) -> Session:
    """Rename or switch moderation. Questions already pending stay pending."""
    fields = []
    if title is not None:
        session.title = title_clean(title)
        fields.append("title")
    if moderated is not None:
        session.moderated = moderated
        fields.append("moderated")
    if fields:
        session.save(update_fields=fields)
    return session


def session_close(*, session_id: int, by: Participant | None = None) -> Session | None:
    """Close the session; the closed row if this call closed it (callers notify)."""
    _require_host(by, session_id, "close the session")
    closed = Session.objects.filter(pk=session_id, status=Session.Status.OPEN).update(
        status=Session.Status.CLOSED, closed_at=timezone.now()
    )
    forget_session(session_id)  # joins in this process see it closed at once
    return Session.objects.get(pk=session_id) if closed else None


def session_reopen(*, session_id: int) -> bool:
    reopened = Session.objects.filter(
        pk=session_id, status=Session.Status.CLOSED
    ).update(status=Session.Status.OPEN, closed_at=None)
    forget_session(session_id)
    return bool(reopened)


def session_delete(*, session: Session) -> None:
    """Delete the session with its participants, messages and votes."""
    session.delete()


# ----------------------------------------------------------------------- participants
def guest_token_ttl() -> float:
    return float(sessions_settings.SESSION_GUEST_TOKEN_TTL)


def participant_guest_join(
    *, session: Session, nickname: str
) -> tuple[Participant, str]:
    """A new guest of an open session and the participant token it connects with."""
    nickname = _nickname(nickname)
    if not session.is_open:
        raise SessionClosed()
    participant = Participant.objects.create(
        session=session, nickname=nickname, role=Participant.Role.GUEST
    )
    token = scoped_token_issue(
        {"kind": "participant", "pid": participant.pk, "session": session.code},
        ttl=guest_token_ttl(),
    )
    return participant, token


def participant_for_user(*, session: Session, user: Any) -> Participant:
    """The signed-in user's row in ``session``, created on first connect: the creator
    ``host``, anyone else ``member``. The unique (session, user) constraint makes two
    first connects at once end with one row: the one that stored second reads the
    other's."""
    for _ in range(2):  # the other's row, read back, may itself be gone by then
        found = participant_of_user(session_id=session.pk, user_id=user.pk)
        if found is not None:
            return found
        is_host = session.host_id == user.pk
        participant = Participant(
            session=session,
            user=user,
            nickname=_nickname_for_user(user),
            role=Participant.Role.HOST if is_host else Participant.Role.MEMBER,
        )
        with connection.cursor() as cursor:
            if participant_insert(cursor, participant):
                return participant
    raise Participant.DoesNotExist(f"no row for user {user.pk} in {session.pk}")


def participant_rename(*, participant: Participant, nickname: str) -> Participant:
    participant.nickname = _nickname(nickname)
    updated = Participant.objects.filter(pk=participant.pk).update(
        nickname=participant.nickname
    )
    forget_participant(participant.pk)
    if not updated:
        raise ParticipantGone()
    return participant


def participant_seen(*, participant_id: int) -> None:
    Participant.objects.filter(pk=participant_id).update(last_seen=timezone.now())


# ----------------------------------------------------------------------- messages
def message_post(
    *,
    session_id: int,
    participant: Participant,
    content: str,
    kind: str = Message.Kind.CHAT,
    client_id: str | None = None,
) -> tuple[Message, bool]:
    """Store a chat message or question; ``(message, created)``.

    One transaction takes the next seq and stores the row: the session row is
    written first (``last_seq = last_seq + 1``), which locks it until commit, so two
    server processes never hand out one seq twice and a refused send takes none. A
    question of a non-host in a moderated session is stored without a seq, pending.
    A ``client_id`` this participant used before returns the original, unchanged
    (``created`` false), and stores nothing.
    """
    text = content_clean(content)
    may_wait = kind == Message.Kind.QUESTION and not participant.is_host
    sql = message_sql(connection.vendor)
    mine = {"session_id": session_id, "participant_id": participant.pk}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Write first: the row lock (PostgreSQL) or the write lock (SQLite) is
            # taken before anything is read, so nothing read here can go stale.
            cursor.execute(
                sql.bump_unless_moderated if may_wait else sql.bump,
                [session_id, Session.Status.OPEN],
            )
            if not cursor.rowcount:
                raise SessionClosed()
            if client_id is not None:
                cursor.execute(sql.duplicate, [session_id, participant.pk, client_id])
                row = cursor.fetchone()
                if row is not None:
                    raise _Duplicate(Message.objects.get(pk=row[0]))
            cursor.execute(sql.found, [participant.pk, session_id])
            found = cursor.fetchone()
            if found is None:
                raise ParticipantGone()
            nickname, last_seq, moderated = found
            pending = may_wait and bool(moderated)
            message = Message(
                **mine,
                seq=None if pending else last_seq,
                nickname=nickname,
                kind=kind,
                content=text,
                client_id=client_id,
                approved=not pending,
            )
            insert_row(cursor, sql.insert, message)
    except _Duplicate as dup:
        return dup.message, False
    except IntegrityError:
        # Another process stored the same client_id between our check and insert.
        original = None
        if client_id is not None:
            original = Message.objects.filter(**mine, client_id=client_id).first()
        if original is None:
            raise
        return original, False
    return message, True


def _question(session_id: int, message_id: int, *, approved: bool = True) -> Message:
    found = Message.objects.filter(
        pk=message_id, session_id=session_id, kind=Message.Kind.QUESTION
    )
    if approved:
        found = found.filter(seq__isnull=False)
    message = found.first()
    if message is None:
        raise NotFound(f"no question {message_id} in this session")
    return message


def question_upvote(
    *, session_id: int, participant: Participant, message_id: int
) -> tuple[Message, bool]:
    """Count one participant's vote once; ``(question, counted)``."""
    with transaction.atomic():
        question = _question(session_id, message_id)
        if question.hidden:
            raise NotFound(f"no question {message_id} in this session")
        try:
            with transaction.atomic():
                QuestionVote.objects.create(message=question, participant=participant)
        except IntegrityError:
            return question, False
        Message.objects.filter(pk=question.pk).update(upvotes=F("upvotes") + 1)
        question.refresh_from_db(fields=["upvotes", "answered"])
    return question, True


def question_answer(
    *,
    session_id: int,
    by: Participant | None,
    message_id: int,
    answered: bool = True,
) -> tuple[Message, bool]:
    """Host marks a question answered (or not); ``(question, changed)``."""
    _require_host(by, session_id, "answer questions")
    question = _question(session_id, message_id)
    changed = Message.objects.filter(pk=question.pk).exclude(answered=answered)
    changed = changed.update(answered=answered)
    question.answered = answered
    return question, bool(changed)


def question_approve(
    *, session_id: int, by: Participant | None, message_id: int
) -> Message:
    """Host lets a pending question through: it takes the next seq now."""
    _require_host(by, session_id, "approve questions")
    with transaction.atomic():
        opened = Session.objects.filter(pk=session_id, status=Session.Status.OPEN)
        if not opened.update(last_seq=F("last_seq") + 1):
            raise SessionClosed()
        question = (
            Message.objects.select_for_update()
            .filter(
                pk=message_id,
                session_id=session_id,
                kind=Message.Kind.QUESTION,
                approved=False,
                seq__isnull=True,
                hidden=False,
            )
            .first()
        )
        if question is None:  # raising rolls the seq back
            raise NotFound(f"no pending question {message_id} in this session")
        question.seq = Session.objects.values_list("last_seq", flat=True).get(
            pk=session_id
        )
        question.approved = True
        question.save(update_fields=["seq", "approved"])
    return question


def message_hide(
    *, session_id: int, by: Participant | None, message_id: int
) -> tuple[Message, bool]:
    """Host hides a message or rejects a pending question; ``(message, changed)``.

    The row and its seq stay, so history keeps its numbering; readers get a tombstone.
    """
    _require_host(by, session_id, "hide messages")
    with transaction.atomic():
        changed = Message.objects.filter(
            pk=message_id, session_id=session_id, hidden=False
        ).update(hidden=True)
        message = Message.objects.filter(pk=message_id, session_id=session_id).first()
        if message is None:
            raise NotFound(f"no message {message_id} in this session")
    return message, bool(changed)
