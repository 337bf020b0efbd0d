"""Connect-path caches: the generic per-process cache, and a JWT's user read once.

A JWT connect is checked on the event loop; its user comes from the process's cache
(one read on a miss). Changes made in this process are seen at once (signals), those
made elsewhere after REALTIME_USER_CACHE_TTL at most.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import models
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken, SlidingToken

from realtime import localcache, usercache
from realtime.auth import authenticate, validate_refresh_token
from realtime.localcache import LocalCache
from realtime.tokens import scoped_token_issue, ticket_issue
from tests.conftest import access_token


def scope(query: str = "", auth: str | None = None) -> dict:
    headers = [(b"authorization", auth.encode())] if auth is not None else []
    return {"type": "websocket", "query_string": query.encode(), "headers": headers}


def connect_auth(query: str):
    """``authenticate`` as the middleware runs it; its database trips (if any) run
    in this thread, on the test's connection, so that they are counted."""
    return async_to_sync(authenticate)(scope(query))


# ------------------------------------------------------------------- LocalCache
def small_cache(ttl: float = 10.0, entries: int = 3) -> LocalCache[str, int]:
    return LocalCache("test", ttl=lambda: ttl, max_entries=lambda: entries)


def test_cache_keeps_values_for_the_ttl(fake_clock):
    cache = small_cache(ttl=10.0)
    cache.put("a", 1, cache.generation())
    assert cache.get("a") == 1 and cache.get("b") is None
    fake_clock.advance(9.9)
    assert cache.get("a") == 1
    fake_clock.advance(0.1)
    assert cache.get("a") is None
    cache.put("a", 2, cache.generation())  # an expired entry is replaced
    assert cache.get("a") == 2 and len(cache) == 1


def test_a_forget_during_a_read_voids_its_put():
    cache = small_cache()
    before = cache.generation()  # a row is being read...
    cache.forget("a")  # ...while it changes
    cache.put("a", 1, before)
    assert cache.get("a") is None
    cache.put("a", 1, cache.generation())
    assert cache.get("a") == 1


def test_a_full_cache_drops_its_oldest_entry():
    cache = small_cache(entries=3)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        cache.put(key, value, cache.generation())
    cache.put("a", 10, cache.generation())  # refreshed: now the newest
    cache.put("d", 4, cache.generation())
    assert [cache.get(k) for k in "abcd"] == [10, None, 3, 4]
    assert len(cache) == 3


def test_ttl_zero_keeps_nothing():
    cache = small_cache(ttl=0)
    cache.put("a", 1, cache.generation())
    assert cache.get("a") is None and len(cache) == 0


def test_forget_where_and_clear_all():
    cache = small_cache(entries=10)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        cache.put(key, value, cache.generation())
    cache.forget_where(lambda key, value: value % 2 == 1)
    assert [cache.get(k) for k in "abc"] == [None, 2, None]
    localcache.clear_all()
    assert cache.get("b") is None and len(cache) == 0


# ------------------------------------------------------------------- JWT connects
pytestmark = pytest.mark.django_db


def test_a_jwt_connect_reads_its_user_once(user, django_assert_num_queries):
    token = access_token(user)
    with django_assert_num_queries(1):
        first = connect_auth(f"token={token}")
    with django_assert_num_queries(0):
        again = connect_auth(f"token={token}")
    assert first.ok and again.ok and again.user == user
    assert again.method == "token" and again.expires_at == first.expires_at


def test_a_scoped_token_needs_no_database(django_assert_num_queries):
    raw = scoped_token_issue({"kind": "participant", "pid": 4}, ttl=60)
    with django_assert_num_queries(0):
        result = connect_auth(f"token={raw}")
    assert result.ok and result.claims["pid"] == 4


def test_a_user_deactivated_here_is_refused_at_once(user):
    token = access_token(user)
    assert connect_auth(f"token={token}").ok
    user.is_active = False
    user.save()
    result = connect_auth(f"token={token}")
    assert result.status == "invalid" and result.reason == "user inactive"


def test_a_user_deleted_here_is_refused_at_once(user):
    token = access_token(user)
    assert connect_auth(f"token={token}").ok
    user.delete()
    result = connect_auth(f"token={token}")
    assert result.status == "invalid" and result.reason == "user not found"


def test_a_password_change_revokes_the_cached_users_tokens(user):
    token = access_token(user)
    assert connect_auth(f"token={token}").ok
    user.set_password("another-Secret-456")
    user.save()
    result = connect_auth(f"token={token}")
    assert result.status == "invalid" and result.reason == "password changed"
    assert connect_auth(f"token={access_token(user)}").ok  # a token issued since


def test_a_change_without_a_signal_is_seen_after_the_ttl(user, fake_clock, settings):
    """As a change made by another process: bounded by REALTIME_USER_CACHE_TTL."""
    settings.REALTIME_USER_CACHE_TTL = 30
    token = access_token(user)
    assert connect_auth(f"token={token}").ok
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    fake_clock.advance(29)
    assert connect_auth(f"token={token}").ok  # the process still holds it
    fake_clock.advance(1)
    assert connect_auth(f"token={token}").reason == "user inactive"


def test_ttl_zero_reads_the_user_on_every_connect(
    user, settings, django_assert_num_queries
):
    settings.REALTIME_USER_CACHE_TTL = 0
    token = access_token(user)
    for _ in range(2):
        with django_assert_num_queries(1):
            assert connect_auth(f"token={token}").ok
    assert usercache.cached_user(user.pk) is None


def test_a_token_without_a_user_id_is_invalid(user):
    token = access_token(user)
    anonymous = AccessToken()  # signed with the same key, but naming nobody
    result = connect_auth(f"token={anonymous}")
    assert result.status == "invalid" and result.reason == "InvalidToken"
    assert connect_auth(f"token={token}").ok


def test_auth_refresh_uses_the_cache_too(user, django_assert_num_queries):
    token = access_token(user)
    with django_assert_num_queries(1):
        assert validate_refresh_token(token).ok
    with django_assert_num_queries(0):
        assert validate_refresh_token(token).ok


def test_blacklisted_token_classes_are_checked_in_the_database(user, monkeypatch):
    """A token class with a blacklist is verified against it (in the thread)."""
    # simplejwt's modules hold its settings object: patched, as overriding
    # SIMPLE_JWT replaces it only where it is looked up by module.
    monkeypatch.setattr(jwt_settings, "AUTH_TOKEN_CLASSES", [SlidingToken])
    sliding = SlidingToken.for_user(user)
    assert connect_auth(f"token={sliding}").ok
    sliding.blacklist()
    assert connect_auth(f"token={sliding}").status == "invalid"


def test_a_ticket_keeps_its_semantics(user, django_assert_num_queries):
    ticket = ticket_issue(user_id=user.pk, expires_at=None)
    first = connect_auth(f"ticket={ticket}")
    assert first.ok and first.method == "ticket" and first.user == user
    assert connect_auth(f"ticket={ticket}").status == "invalid"  # used once
    user.is_active = False
    user.save()
    again = ticket_issue(user_id=user.pk, expires_at=None)
    assert connect_auth(f"ticket={again}").status == "invalid"


def test_a_user_is_read_by_its_own_statement(
    user, make_user, django_assert_num_queries
):
    inactive = make_user("idle", is_active=False)  # the auth decides, not the read
    with django_assert_num_queries(1) as context:
        read = usercache.load_user(str(user.pk))  # simplejwt's claim: a string
    assert "SELECT * FROM" in context.captured_queries[0]["sql"]
    assert (read.pk, read.username, read.is_active) == (user.pk, "alice", True)
    assert read.get_deferred_fields() == set()  # every column read
    idle = usercache.load_user(inactive.pk)
    assert (idle.username, idle.is_active) == ("idle", False)
    assert usercache.load_user(10**9) is None
    assert usercache.cached_user(user.pk) == user


class _OrmOnly(models.Manager):
    """A stand-in manager: answers ``filter(...).first()``, has no ``raw``."""

    def __init__(self, rows: list) -> None:
        super().__init__()
        self.rows = rows

    def filter(self, **lookup):
        assert lookup == {"id": 7}
        return self

    def first(self):
        return self.rows[0] if self.rows else None

    def __getattribute__(self, name):
        if name == "raw":
            raise AssertionError("read by its own statement")
        return super().__getattribute__(name)


class _Filtering(_OrmOnly):
    def get_queryset(self):  # e.g. a manager that hides deactivated users
        return super().get_queryset()


class _ActiveOnly(models.QuerySet):
    pass


_FromQuerySet = _OrmOnly.from_queryset(_ActiveOnly)  # a queryset of its own


def stand_in(manager, parents: dict):
    meta = type("Meta", (), {"parents": parents})()
    return type("User", (), {"objects": manager, "_meta": meta})


def test_a_user_model_the_statement_would_misread_goes_through_the_orm():
    with_parent = stand_in(_OrmOnly(["ann"]), {"Person": "person_ptr"})
    assert usercache._read_user(with_parent, "id", 7) == "ann"
    filtering = stand_in(_Filtering([]), {})
    assert usercache._read_user(filtering, "id", 7) is None
    own_queryset = stand_in(_FromQuerySet(["bob"]), {})
    assert usercache._read_user(own_queryset, "id", 7) == "bob"
