"""config.sqlite: Django's SQLite backend, placeholders converted once a statement."""

from __future__ import annotations

import pytest
from django.db import connection, connections
from django.db.backends.sqlite3 import base as django_sqlite

from config.sqlite import base

pytestmark = pytest.mark.django_db

QUERIES = [
    "SELECT %s",
    "SELECT %s, %s WHERE 1 = %s",
    "SELECT '%%s', %s",  # a literal %s, and a placeholder
    "SELECT 'a %% b' || %s",
    "SELECT 1",
]


@pytest.fixture
def converted(monkeypatch):
    """The backend's table of converted statements, empty for the test."""
    table: dict[str, str] = {}
    monkeypatch.setattr(base, "_converted", table)
    return table


def test_the_default_database_is_the_project_backend():
    assert connection.vendor == "sqlite"
    assert isinstance(connections["default"], base.DatabaseWrapper)
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, base.SQLiteCursorWrapper)


@pytest.mark.parametrize("query", QUERIES)
def test_a_statement_is_converted_as_django_converts_it(query, converted):
    with connection.cursor() as cursor:
        ours = cursor.cursor.convert_query(query)
        again = cursor.cursor.convert_query(query)
        theirs = django_sqlite.SQLiteCursorWrapper.convert_query(cursor.cursor, query)
    assert ours == theirs
    assert again is ours  # the second time from the table
    assert converted == {query: theirs}


def test_statements_run_with_their_parameters(converted):
    with connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute("SELECT %s, '%%s', %s", [7, "x"])
            assert cursor.fetchone() == (7, "%s", "x")
        # "pyformat": a mapping of parameters is Django's own conversion, not kept
        cursor.execute("SELECT %(a)s + %(b)s", {"a": 2, "b": 3})
        assert cursor.fetchone() == (5,)
    assert list(converted) == ["SELECT %s, '%%s', %s"]


def test_past_the_limits_a_statement_is_converted_and_not_kept(monkeypatch, converted):
    monkeypatch.setattr(base, "CONVERTED_LIMIT", 3)
    monkeypatch.setattr(base, "CONVERTED_LENGTH", len("SELECT %s, %s, %s"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(['%s'] * 4)}", [1, 2, 3, 4])  # too long
        assert cursor.fetchone() == (1, 2, 3, 4)
    assert converted == {}
    monkeypatch.setattr(base, "CONVERTED_LIMIT", 2)
    with connection.cursor() as cursor:
        for n in range(1, 5):
            placeholders = ", ".join(["%s"] * n)
            cursor.execute(f"SELECT {placeholders}", list(range(n)))
            assert cursor.fetchone() == tuple(range(n))
    assert list(converted) == ["SELECT %s", "SELECT %s, %s"]


def test_executemany_converts_through_it(converted):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE pairs (a INTEGER, b TEXT)")
        cursor.executemany("INSERT INTO pairs VALUES (%s, %s)", [(1, "x"), (2, "y")])
        cursor.execute("SELECT a, b FROM pairs ORDER BY a")
        assert cursor.fetchall() == [(1, "x"), (2, "y")]
    assert "INSERT INTO pairs VALUES (%s, %s)" in converted


def test_the_orm_reads_and_writes_through_it(django_user_model, converted):
    django_user_model.objects.create_user(username="ann", password="pw-Secret-123")
    assert django_user_model.objects.filter(username__in=["ann", "bob"]).count() == 1
    assert any("auth_user" in query for query in converted)
