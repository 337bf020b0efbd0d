"""A join's session and participant, kept per process (sessions_app.joincache).

A repeated join reads no rows; a close, reopen, rename or delete made in this process
is seen by the next join at once; a change made elsewhere (an ``update()`` without
this process's hooks) after SESSION_CACHE_TTL at most.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from realtime.auth import AuthResult
from realtime.consumers import CloseConnection
from realtime.localcache import LocalCache
from realtime.tokens import scoped_token_verify
from sessions_app import joincache, services
from sessions_app.joining import session_entry
from sessions_app.models import Participant, Session
from tests.conftest import access_token, closed_with
from tests.sessions.conftest import connect, guest, join

pytestmark = pytest.mark.django_db


def guest_auth(session, nickname: str = "ann") -> AuthResult:
    _, token = services.participant_guest_join(session=session, nickname=nickname)
    return AuthResult("ok", method="token", claims=scoped_token_verify(token))


def user_auth(user) -> AuthResult:
    return AuthResult("ok", user=user, method="token")


def entry_code(session, auth) -> int:
    with pytest.raises(CloseConnection) as refused:
        session_entry(code=session.code, auth=auth)
    return refused.value.code


def test_a_repeated_join_reads_no_rows(session, django_assert_num_queries):
    auth = guest_auth(session)
    with django_assert_num_queries(2):  # the session, the participant
        first = session_entry(code=session.code, auth=auth)
    with django_assert_num_queries(0):
        again = session_entry(code=session.code.lower(), auth=auth)
    assert again[0].pk == first[0].pk and again[1].pk == first[1].pk
    assert again[1].nickname == "ann"


def test_a_signed_in_users_participant_is_kept_too(
    session, make_user, django_assert_num_queries
):
    member = make_user("member")
    _, participant = session_entry(code=session.code, auth=user_auth(member))
    assert participant.role == "member"
    with django_assert_num_queries(0):
        _, again = session_entry(code=session.code, auth=user_auth(member))
    assert again.pk == participant.pk
    assert Participant.objects.filter(session=session, user=member).count() == 1


def test_joins_get_copies(session):
    auth = guest_auth(session)
    _, participant = session_entry(code=session.code, auth=auth)
    participant.nickname = "changed in a consumer"
    _, again = session_entry(code=session.code, auth=auth)
    assert again.nickname == "ann" and again is not participant


def test_a_session_closed_here_is_refused_at_once_and_reopened(session):
    auth = guest_auth(session)
    session_entry(code=session.code, auth=auth)
    services.session_close(session_id=session.pk)
    assert entry_code(session, auth) == 4010
    services.session_reopen(session_id=session.pk)
    assert session_entry(code=session.code, auth=auth)[0].is_open


def test_a_close_elsewhere_is_seen_after_the_ttl(session, fake_clock, settings):
    settings.SESSION_CACHE_TTL = 10
    auth = guest_auth(session)
    session_entry(code=session.code, auth=auth)
    # Another process closes it: this one has no hook to call.
    Session.objects.filter(pk=session.pk).update(status=Session.Status.CLOSED)
    fake_clock.advance(9.5)
    assert session_entry(code=session.code, auth=auth)[0].is_open
    fake_clock.advance(0.5)
    assert entry_code(session, auth) == 4010


def test_a_rename_is_seen_by_the_next_join(session):
    auth = guest_auth(session)
    _, participant = session_entry(code=session.code, auth=auth)
    services.participant_rename(participant=participant, nickname="bea")
    assert session_entry(code=session.code, auth=auth)[1].nickname == "bea"


def test_a_saved_session_is_read_afresh(session):
    auth = guest_auth(session)
    session_entry(code=session.code, auth=auth)
    services.session_update(session=session, title="Renamed")
    assert session_entry(code=session.code, auth=auth)[0].title == "Renamed"


def test_deleted_rows_refuse_the_join(session, host):
    auth = guest_auth(session)
    _, participant = session_entry(code=session.code, auth=auth)
    Participant.objects.filter(pk=participant.pk).delete()
    assert entry_code(session, auth) == 4005
    session_entry(code=session.code, auth=user_auth(host))  # kept, then deleted
    services.session_delete(session=session)
    assert entry_code(session, user_auth(host)) == 4004
    assert len(joincache.participants) == 0


def test_unknown_codes_and_odd_pids_are_not_kept(session):
    assert entry_code(Session(code="!!"), guest_auth(session)) == 4004
    assert entry_code(Session(code="ZZZZZZ"), guest_auth(session)) == 4004
    claims = {"kind": "participant", "pid": [1], "session": session.code}
    assert entry_code(session, AuthResult("ok", claims=claims)) == 4005
    assert len(joincache.sessions) == 1  # only the session that exists
    assert len(joincache.participants) == 0


def test_ttl_zero_reads_every_time(session, settings, django_assert_num_queries):
    settings.SESSION_CACHE_TTL = 0
    auth = guest_auth(session)
    for _ in range(2):
        with django_assert_num_queries(2):
            session_entry(code=session.code, auth=auth)


def test_a_change_in_a_transaction_is_forgotten_again_on_commit(
    django_capture_on_commit_callbacks,
):
    cache: LocalCache[str, int] = LocalCache(
        "test", ttl=lambda: 10.0, max_entries=lambda: 10
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cache.forget("a")
        # The database thread read the old row before the commit and kept it...
        cache.put("a", 1, cache.generation())
    assert cache.get("a") == 1
    for callback in callbacks:  # ...until the change committed
        callback()
    assert cache.get("a") is None


@pytest.mark.django_db(transaction=True)
async def test_a_socket_joins_a_session_closed_here_no_more(host):
    session = await sync_to_async(services.session_create)(host=host, title="T")
    _, token = await guest(session)
    comm, _ = await join(session.code, token)  # the session and guest are kept
    await comm.disconnect()
    host_comm, _ = await join(session.code, bearer=access_token(host))
    await host_comm.disconnect()
    await sync_to_async(services.session_close)(session_id=session.pk)
    for credential in ({"token": token}, {"bearer": access_token(host)}):
        comm = await connect(session.code, **credential)
        assert await closed_with(comm) == 4010
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_admitted_by_a_stale_row_is_closed_by_the_fresh_read(host):
    """Closed by another process inside the TTL (no hook here): the join's row is
    stale, but the backlog read after the group join sees the close, so the socket
    gets 4010 instead of a welcome it would keep forever (the close's broadcast
    went out before it joined)."""
    session = await sync_to_async(services.session_create)(host=host, title="T")
    _, token = await guest(session)
    comm, _ = await join(session.code, token)  # the session is kept
    await comm.disconnect()
    closed = Session.objects.filter(pk=session.pk)
    await sync_to_async(closed.update)(status=Session.Status.CLOSED)
    comm = await connect(session.code, token=token)
    assert await closed_with(comm) == 4010
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_rejoin_with_both_rows_cached_stays_on_the_event_loop(
    host, monkeypatch
):
    from sessions_app import joining

    session = await sync_to_async(services.session_create)(host=host, title="T")
    auth = await sync_to_async(guest_auth)(session)
    trips = []
    real = joining.to_database_thread

    def counted(fn):
        trips.append(fn.__name__)
        return real(fn)

    monkeypatch.setattr(joining, "to_database_thread", counted)
    first, you = await joining.asession_entry(code=session.code, auth=auth)
    assert trips == ["session_entry"]  # cold: the rows are read
    again, you_again = await joining.asession_entry(code=session.code, auth=auth)
    assert trips == ["session_entry"]  # warm: no trip to the database thread
    assert (again.pk, you_again.pk) == (first.pk, you.pk)
    await sync_to_async(services.session_close)(session_id=session.pk)
    with pytest.raises(CloseConnection) as refused:  # forgotten here at once
        await joining.asession_entry(code=session.code, auth=auth)
    assert refused.value.code == 4010
