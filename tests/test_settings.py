"""config/settings.py from the environment: defaults, switches, loud failures."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[1] / "config" / "settings.py"
VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "REDIS_URL",
    "DATABASE_URL",
    "HEARTBEAT_QUICK",
    "HEARTBEAT_INTERVAL",
    "PONG_TIMEOUT",
    "PRESENCE_TTL",
    "SHARE_RATE_LIMIT",
    "COPILOT_RATE_LIMIT",
    "ALLOWED_HOSTS",
    "CALLBACK_TIMEOUT",
    "SESSION_THROTTLES",
    "CAMERA_MAX_FRAME_BYTES",
    "REALTIME_FANOUT",
)


def load(monkeypatch, **env: str) -> dict:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


def test_defaults_need_nothing_installed(monkeypatch):
    s = load(monkeypatch, DEBUG="1")
    assert s["DATABASES"]["default"]["ENGINE"] == "config.sqlite"  # subclasses Django's
    # SQLite: the database thread keeps its connection; HTTP requests close
    # theirs (realtime.apps.close_request_connections).
    assert s["DATABASES"]["default"]["CONN_MAX_AGE"] is None
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"].endswith("InMemoryChannelLayer")
    assert s["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")
    assert (s["HEARTBEAT_INTERVAL"], s["PONG_TIMEOUT"], s["MAX_MISSED_PONGS"]) == (
        30,
        10,
        3,
    )
    assert s["PRESENCE_TTL"] == 60
    assert s["SHARE_RATE_LIMIT"] is True and s["SINGLE_SESSION_PER_USER"] is False
    assert s["REALTIME_MAX_TEXT_BYTES"] == 65536 and s["REALTIME_MAX_VIOLATIONS"] == 20
    assert s["STREAM_MAX_IN_FLIGHT"] == 2 and s["CALLBACK_TIMEOUT"] == 10
    assert s["SESSION_THROTTLES"]["chat.send"] == (100, 10.0)
    assert s["REALTIME_FANOUT"] == "hub"
    assert "localhost" in s["ALLOWED_HOSTS"]


def test_redis_and_postgres_switches(monkeypatch):
    s = load(
        monkeypatch,
        DEBUG="1",
        REDIS_URL="redis://127.0.0.1:6379/3",
        DATABASE_URL="postgres://u:p@db.example:5432/rt",
    )
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == (
        "channels_redis.core.RedisChannelLayer"
    )
    assert s["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == [
        "redis://127.0.0.1:6379/3"
    ]
    assert s["CACHES"]["default"]["BACKEND"].endswith("RedisCache")
    db = s["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["HOST"], db["PORT"], db["CONN_MAX_AGE"]) == (
        "rt",
        "db.example",
        5432,
        0,
    )
    assert db["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 10, "timeout": 30.0}


def test_quick_heartbeat(monkeypatch):
    s = load(monkeypatch, DEBUG="1", HEARTBEAT_QUICK="true", HEARTBEAT_INTERVAL="99")
    assert (s["HEARTBEAT_INTERVAL"], s["PONG_TIMEOUT"], s["PRESENCE_TTL"]) == (5, 3, 15)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "1", "HEARTBEAT_INTERVAL": "soon"}, "HEARTBEAT_INTERVAL"),
        ({"DEBUG": "1", "PONG_TIMEOUT": "-1"}, "PONG_TIMEOUT"),
        ({"DEBUG": "1", "COPILOT_RATE_LIMIT": "1.5"}, "COPILOT_RATE_LIMIT"),
        ({"DEBUG": "1", "SHARE_RATE_LIMIT": "2"}, "SHARE_RATE_LIMIT"),
        ({"DEBUG": "1", "REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"DEBUG": "1", "DATABASE_URL": "nonsense://x"}, "DATABASE_URL"),
        ({"DEBUG": "1", "SESSION_THROTTLES": "chat.send=lots"}, "SESSION_THROTTLES"),
        ({"DEBUG": "1", "CAMERA_MAX_FRAME_BYTES": "10"}, "CAMERA_MAX_FRAME_BYTES"),
        ({"DEBUG": "1", "REALTIME_FANOUT": "fast"}, "REALTIME_FANOUT"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, env, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        load(monkeypatch, **env)


def test_an_endpoint_throttle_changes_one_type(monkeypatch):
    s = load(monkeypatch, DEBUG="1", SESSION_THROTTLES="chat.send=200/10")
    assert s["SESSION_THROTTLES"]["chat.send"] == (200, 10.0)
    assert s["SESSION_THROTTLES"]["typing"] == (5, 1.0)


def test_production_values(monkeypatch):
    s = load(
        monkeypatch,
        DEBUG="0",
        SECRET_KEY="k" * 50,
        ALLOWED_HOSTS="rt.example.com, api.example.com",
    )
    assert s["DEBUG"] is False and s["SECRET_KEY"] == "k" * 50
    assert s["ALLOWED_HOSTS"] == ["rt.example.com", "api.example.com"]
