"""Services and selectors called directly: codes, seq, moderation, votes."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import IntegrityError, connection

from realtime.errors import Invalid, NotFound, PermissionDenied
from realtime.tokens import scoped_token_verify
from sessions_app import codes, message_sql, selectors, services
from sessions_app.models import Message, Participant, Session
from sessions_app.participant_sql import participant_insert

pytestmark = pytest.mark.django_db


def test_codes_are_short_unambiguous_and_random():
    many = {codes.code_generate() for _ in range(2000)}
    assert len(many) == 2000
    for code in many:
        assert len(code) == 8
        assert not set(code) & set("0O1lI")
        assert set(code) <= set(codes.ALPHABET)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("abcd-efgh", "ABCDEFGH"),
        (" ABCD EFGH ", "ABCDEFGH"),
        ("ABCDEFG0", None),  # 0 is never in a code
        ("ABCDEFG", None),
        ("x" * 40, None),
        (None, None),
    ],
)
def test_code_normalise(raw, expected):
    assert codes.code_normalise(raw) == expected


def test_session_create_makes_the_host_a_participant(host):
    session = services.session_create(host=host, title="  Weekly   sync ")
    assert session.title == "Weekly sync"
    assert session.status == "open" and session.last_seq == 0
    (row,) = Participant.objects.filter(session=session)
    assert row.user == host and row.role == "host" and row.nickname == "hosty"


def test_session_create_retries_a_taken_code(host, monkeypatch):
    first = services.session_create(host=host, title="one")
    generated = iter([first.code, first.code, "ZZZZ2222"])
    monkeypatch.setattr(services, "code_generate", lambda: next(generated))
    second = services.session_create(host=host, title="two")
    assert second.code == "ZZZZ2222"
    monkeypatch.setattr(services, "code_generate", lambda: first.code)
    with pytest.raises(IntegrityError):
        services.session_create(host=host, title="three")


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_bad_titles(host, title):
    with pytest.raises(Invalid):
        services.session_create(host=host, title=title)


@pytest.mark.parametrize(
    ("raw", "result"),
    [
        ("  Ann  Lee ", "Ann Lee"),
        ("é" * 40, "é" * 40),
        ("", ValueError),
        ("x" * 41, ValueError),
        ("bell\x07", ValueError),
        ("zero\u200bwidth", ValueError),
    ],
)
def test_nickname_clean(raw, result):
    if result is ValueError:
        with pytest.raises(ValueError):
            services.nickname_clean(raw)
    else:
        assert services.nickname_clean(raw) == result


def test_user_nickname_falls_back_for_unusable_names(make_user):
    odd = make_user("x" * 10, first_name="\x07")
    session = services.session_create(host=odd, title="t")
    assert session.participants.get().nickname == f"user{odd.pk}"
    named = make_user("ada", first_name="Ada", last_name="Lovelace")
    assert services.participant_for_user(session=session, user=named).nickname == (
        "Ada Lovelace"
    )


def test_a_signed_in_user_gets_one_row_per_session(session, host, make_user):
    ada = make_user("ada")
    first = services.participant_for_user(session=session, user=ada)
    again = services.participant_for_user(session=session, user=ada)
    assert (first.pk, first.role, first.nickname) == (again.pk, "member", "ada")
    assert services.participant_for_user(session=session, user=host).role == "host"
    assert Participant.objects.get(pk=first.pk).joined_at == first.joined_at


def test_two_first_connects_at_once_end_with_one_row(session, make_user, monkeypatch):
    ada = make_user("ada")
    theirs = services.participant_for_user(session=session, user=ada)
    real_read = services.participant_of_user
    reads = []

    def read_after_the_other(**kwargs):  # ours read before theirs was stored
        reads.append(kwargs)
        return None if len(reads) == 1 else real_read(**kwargs)

    monkeypatch.setattr(services, "participant_of_user", read_after_the_other)
    ours = services.participant_for_user(session=session, user=ada)
    assert ours.pk == theirs.pk and len(reads) == 2
    assert Participant.objects.filter(session=session, user=ada).count() == 1


def test_a_row_gone_before_it_was_read_back_is_made_again(
    session, make_user, monkeypatch
):
    ada = make_user("ada")
    theirs = services.participant_for_user(session=session, user=ada)
    real_read = services.participant_of_user
    reads = []

    def read(**kwargs):
        reads.append(kwargs)
        if len(reads) == 1:
            return None  # ours read before theirs was stored...
        Participant.objects.filter(pk=theirs.pk).delete()  # ...and gone since
        return real_read(**kwargs)

    monkeypatch.setattr(services, "participant_of_user", read)
    ours = services.participant_for_user(session=session, user=ada)
    assert ours.pk != theirs.pk and len(reads) == 2
    assert Participant.objects.get(session=session, user=ada).pk == ours.pk
    monkeypatch.setattr(services, "participant_of_user", lambda **kw: None)
    with pytest.raises(Participant.DoesNotExist):  # never readable: not a None
        services.participant_for_user(session=session, user=ada)


def test_without_returning_the_key_is_read_back(session, make_user, monkeypatch):
    """SQLite before 3.35 (which Django still takes) has no RETURNING."""
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    ada = make_user("ada")
    first = services.participant_for_user(session=session, user=ada)
    assert Participant.objects.get(pk=first.pk).user == ada
    late = Participant(session=session, user=ada, nickname="x")
    with connection.cursor() as cursor:
        assert not participant_insert(cursor, late)
    assert late.pk is None
    assert Participant.objects.filter(session=session, user=ada).count() == 1


def post(session, who, content="hi", **extra):
    return services.message_post(
        session_id=session.pk, participant=who, content=content, **extra
    )


@pytest.fixture
def ann(session):
    participant, _ = services.participant_guest_join(session=session, nickname="ann")
    return participant


@pytest.fixture
def host_participant(session, host):
    return services.participant_for_user(session=session, user=host)


def test_seq_is_gapless_and_refused_sends_take_none(session, ann):
    assert [post(session, ann, f"m{i}")[0].seq for i in range(3)] == [1, 2, 3]
    with pytest.raises(Invalid):
        post(session, ann, "x" * 2001)
    with pytest.raises(Invalid):
        post(session, ann, " \n ")
    assert post(session, ann)[0].seq == 4
    session.refresh_from_db()
    assert session.last_seq == 4


def test_closed_session_and_removed_participant_store_nothing(session, ann):
    post(session, ann)
    other, _ = services.participant_guest_join(session=session, nickname="bo")
    Participant.objects.filter(pk=other.pk).delete()
    with pytest.raises(services.ParticipantGone):
        post(session, other)
    services.session_close(session_id=session.pk)
    with pytest.raises(services.SessionClosed):
        post(session, ann)
    session.refresh_from_db()
    assert session.last_seq == 1 and Message.objects.count() == 1


def test_client_id_is_stored_once(session, ann):
    first, created = post(session, ann, "hello", client_id="c1")
    again, created_again = post(session, ann, "changed", client_id="c1")
    assert created and not created_again
    assert again.pk == first.pk and again.content == "hello"
    session.refresh_from_db()
    assert session.last_seq == 1  # the retry took no seq


def test_client_id_race_between_processes_returns_the_original(
    session, ann, monkeypatch
):
    """Another process stores the same client_id between our check and insert."""
    original, _ = post(session, ann, "first", client_id="c9")
    real_sql = message_sql.message_sql(connection.vendor)
    # The check inside the transaction sees nothing, as if the other process's row
    # had not been committed yet; the insert then meets the unique constraint.
    blind = dataclasses.replace(real_sql, duplicate=real_sql.duplicate + " AND 1 = 0")
    monkeypatch.setattr(services, "message_sql", lambda vendor: blind)
    again, created = post(session, ann, "second", client_id="c9")
    assert not created and again.pk == original.pk
    session.refresh_from_db()
    assert session.last_seq == 1
    real_filter = Message.objects.filter
    monkeypatch.setattr(Message.objects, "filter", lambda *a, **k: real_filter(pk=0))
    with pytest.raises(IntegrityError):  # no original to be found: a real conflict
        post(session, ann, "third", client_id="c9")


def test_moderated_question_waits_then_takes_the_next_seq(host, host_participant, ann):
    session = host_participant.session
    services.session_update(session=session, moderated=True)
    question, _ = post(session, ann, "pending?", kind="question")
    assert question.seq is None and question.approved is False
    assert post(session, ann, "chat")[0].seq == 1
    assert selectors.session_pending_questions(session_id=session.pk) == [question]
    assert (
        selectors.session_pending_questions(
            session_id=session.pk, participant_id=host_participant.pk
        )
        == []
    )
    with pytest.raises(PermissionDenied):
        services.question_approve(session_id=session.pk, by=ann, message_id=question.pk)
    approved = services.question_approve(
        session_id=session.pk, by=host_participant, message_id=question.pk
    )
    assert approved.seq == 2 and approved.approved
    with pytest.raises(NotFound):  # not pending any more; the seq is not taken
        services.question_approve(
            session_id=session.pk, by=None, message_id=question.pk
        )
    session.refresh_from_db()
    assert session.last_seq == 2
    host_question, _ = post(session, host_participant, "mine", kind="question")
    assert host_question.seq == 3


def test_approve_in_a_closed_session(session, ann):
    services.session_update(session=session, moderated=True)
    question, _ = post(session, ann, "q", kind="question")
    services.session_close(session_id=session.pk)
    with pytest.raises(services.SessionClosed):
        services.question_approve(
            session_id=session.pk, by=None, message_id=question.pk
        )


def test_upvote_once_and_answer_by_host(session, ann, host_participant):
    question, _ = post(session, ann, "why?", kind="question")
    voted, counted = services.question_upvote(
        session_id=session.pk, participant=ann, message_id=question.pk
    )
    assert counted and voted.upvotes == 1
    voted, counted = services.question_upvote(
        session_id=session.pk, participant=ann, message_id=question.pk
    )
    assert not counted and voted.upvotes == 1
    with pytest.raises(PermissionDenied):
        services.question_answer(session_id=session.pk, by=ann, message_id=question.pk)
    answered, changed = services.question_answer(
        session_id=session.pk, by=host_participant, message_id=question.pk
    )
    assert changed and answered.answered
    _, changed = services.question_answer(
        session_id=session.pk, by=host_participant, message_id=question.pk
    )
    assert not changed


def test_host_of_another_session_is_not_host_here(host, session, ann):
    other = services.session_create(host=host, title="other")
    other_host = other.participants.get(role="host")
    with pytest.raises(PermissionDenied):
        services.session_close(session_id=session.pk, by=other_host)
    with pytest.raises(PermissionDenied):
        services.message_hide(session_id=session.pk, by=other_host, message_id=1)


def test_hidden_questions_cannot_be_upvoted(session, ann, host_participant):
    question, _ = post(session, ann, "q", kind="question")
    services.message_hide(
        session_id=session.pk, by=host_participant, message_id=question.pk
    )
    with pytest.raises(NotFound):
        services.question_upvote(
            session_id=session.pk, participant=ann, message_id=question.pk
        )


def test_guest_join_token_and_closed_session(session):
    participant, token = services.participant_guest_join(session=session, nickname="g")
    claims = scoped_token_verify(token)
    assert claims["kind"] == "participant"
    assert claims["pid"] == participant.pk and claims["session"] == session.code
    services.session_close(session_id=session.pk)
    session.refresh_from_db()
    with pytest.raises(services.SessionClosed):
        services.participant_guest_join(session=session, nickname="late")


def test_close_reopen_update_rename(session, ann):
    closed = services.session_close(session_id=session.pk)
    assert closed.status == "closed" and closed.closed_at is not None
    assert services.session_close(session_id=session.pk) is None  # already closed
    assert services.session_reopen(session_id=session.pk)
    assert not services.session_reopen(session_id=session.pk)
    session.refresh_from_db()
    assert session.status == "open" and session.closed_at is None
    services.session_update(session=session)  # nothing to change
    services.participant_rename(participant=ann, nickname=" Anna ")
    assert Participant.objects.get(pk=ann.pk).nickname == "Anna"
    Participant.objects.filter(pk=ann.pk).delete()
    with pytest.raises(services.ParticipantGone):
        services.participant_rename(participant=ann, nickname="ghost")


def test_selectors(session, ann):
    assert selectors.session_get(code=session.code.lower()) == session
    assert selectors.session_get(code="bad code") is None
    assert selectors.session_get(code=session.code, kind="conversation") is None
    assert selectors.participant_get(session_id=session.pk, participant_id="1") is None
    assert selectors.participant_get(session_id=session.pk, participant_id=True) is None
    assert (
        selectors.participant_get(session_id=session.pk, participant_id=ann.pk) == ann
    )
    for i in range(5):
        post(session, ann, f"m{i}")
    page = selectors.session_messages(session_id=session.pk, after=1, upto=4, limit=2)
    assert [m.seq for m in page] == [2, 3]
    assert selectors.session_backlog(session_id=session.pk).last_seq == 5
    assert list(selectors.session_list_hosted(user=session.host)) == [session]
    assert selectors.session_online_count(session_id=session.pk) == 0
    assert str(session).startswith(session.code)
    assert str(ann) == "ann (guest)"
    assert str(page[0]) == "#2 chat: m1"
    assert Session.objects.get(pk=session.pk).is_open
