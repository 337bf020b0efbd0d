"""realtime.conf: knobs read at use, their defaults, get() and from_environment."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from camera.conf import camera_settings
from realtime import conf
from realtime.conf import AppSettings, Knob, from_environment, get, realtime_settings
from sessions_app.conf import sessions_settings

# Knobs of a made-up app, one per kind; no Django setting has these names.
sample = AppSettings(
    [
        Knob("CONFTEST_NAME", "plain"),
        Knob("CONFTEST_MODE", "a", choices=("a", "b")),
        Knob("CONFTEST_ON", True, "bool"),
        Knob("CONFTEST_COUNT", 3, "int", minimum=1),
        Knob("CONFTEST_SECONDS", 0.5, "float", minimum=0.1),
        Knob("CONFTEST_HOSTS", ["a.example"], "list"),
        Knob("CONFTEST_RATES", {"x.send": (5, 1.0), "y": (2, 10.0)}, "rates"),
        Knob(
            "CONFTEST_DERIVED",
            lambda read: 2 * read("CONFTEST_COUNT"),
            "int",
            doc="a default computed from another knob",
        ),
    ]
)


@pytest.fixture
def env(monkeypatch):
    """Sets environment variables; every CONFTEST_ and heartbeat one starts unset."""
    for name in (*sample.knobs, *realtime_settings.knobs):
        monkeypatch.delenv(name, raising=False)

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_


# ----------------------------------------------------------------------- read at use
def test_a_knob_is_read_from_django_settings_at_each_access(settings):
    settings.TICKET_TTL = 7
    assert realtime_settings.TICKET_TTL == 7
    settings.TICKET_TTL = 9  # never cached: the fixture's override shows at once
    assert realtime_settings.TICKET_TTL == 9


def test_a_value_is_cast_to_its_kind(settings):
    settings.SESSION_GAP_WAIT = "2"
    settings.CAMERA_MAX_FRAME_BYTES = "4096"
    settings.REALTIME_DIRECT_WRITES = 0
    assert sessions_settings.SESSION_GAP_WAIT == 2.0
    assert camera_settings.CAMERA_MAX_FRAME_BYTES == 4096
    assert realtime_settings.REALTIME_DIRECT_WRITES is False


def test_an_unset_knob_reads_its_default(settings):
    del settings.SESSION_GAP_WAIT
    del settings.STREAM_THROTTLES
    assert sessions_settings.SESSION_GAP_WAIT == 0.5
    assert camera_settings.STREAM_THROTTLES == {
        "ping": (10, 1.0),
        "stream.subscribe": (10, 1.0),
    }
    assert sample.CONFTEST_NAME == "plain"  # never in Django's settings at all


def test_a_computed_default_reads_the_other_knobs_at_use(settings):
    del settings.PRESENCE_TTL
    settings.HEARTBEAT_QUICK = True
    assert realtime_settings.PRESENCE_TTL == 15
    settings.HEARTBEAT_QUICK = False
    assert realtime_settings.PRESENCE_TTL == 60
    settings.CONFTEST_COUNT = 4
    assert sample.CONFTEST_DERIVED == 8


def test_a_name_the_app_did_not_declare_is_an_attribute_error():
    with pytest.raises(AttributeError, match="SESSION_GAP_WAIT"):
        _ = realtime_settings.SESSION_GAP_WAIT  # the sessions app's, not the toolkit's
    with pytest.raises(AttributeError):
        _ = realtime_settings.DEBUG  # Django's own
    assert "TICKET_TTL" in dir(realtime_settings)


def test_every_app_knob_is_in_django_settings():
    for app in (realtime_settings, sessions_settings, camera_settings):
        missing = [name for name in app.knobs if not hasattr(django_settings, name)]
        assert missing == []


# --------------------------------------------------------------------------- registry
def test_get_reads_any_apps_knob_by_name(settings):
    settings.SESSION_THROTTLES = {"chat.send": (1, 1.0)}
    assert get("SESSION_THROTTLES") == {"chat.send": (1, 1.0)}
    assert get("ECHO_THROTTLES")["echo.ask"] == (5, 1.0)
    assert get("CONFTEST_COUNT") == 3
    with pytest.raises(KeyError, match="NO_SUCH_KNOB"):
        get("NO_SUCH_KNOB")


def test_a_name_belongs_to_one_app():
    AppSettings([sample.knobs["CONFTEST_COUNT"]])  # the same knob again: harmless
    with pytest.raises(ValueError, match="CONFTEST_COUNT"):
        AppSettings([Knob("CONFTEST_COUNT", 4, "int")])
    assert get("CONFTEST_COUNT") == 3


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="CONFTEST_ODD"):
        Knob("CONFTEST_ODD", 1, "complex")  # type: ignore[arg-type]
    assert "CONFTEST_ODD" not in conf._registry


# ---------------------------------------------------------------- from the environment
def test_unset_variables_give_the_defaults(env):
    assert from_environment(sample) == {
        "CONFTEST_NAME": "plain",
        "CONFTEST_MODE": "a",
        "CONFTEST_ON": True,
        "CONFTEST_COUNT": 3,
        "CONFTEST_SECONDS": 0.5,
        "CONFTEST_HOSTS": ["a.example"],
        "CONFTEST_RATES": {"x.send": (5, 1.0), "y": (2, 10.0)},
        "CONFTEST_DERIVED": 6,
    }


def test_every_kind_is_parsed(env):
    env(
        CONFTEST_NAME="other",
        CONFTEST_MODE="b",
        CONFTEST_ON="off",
        CONFTEST_COUNT="5",
        CONFTEST_SECONDS="0.25",
        CONFTEST_HOSTS=" b.example, ,c.example ",
        CONFTEST_RATES="x.send=200/10, z=1/0.5",
    )
    values = from_environment(sample)
    assert values["CONFTEST_NAME"] == "other" and values["CONFTEST_MODE"] == "b"
    assert values["CONFTEST_ON"] is False
    assert values["CONFTEST_COUNT"] == 5 and values["CONFTEST_SECONDS"] == 0.25
    assert values["CONFTEST_HOSTS"] == ["b.example", "c.example"]
    # Merged over the default: y keeps its rate, x.send changes, z is added.
    assert values["CONFTEST_RATES"] == {
        "x.send": (200, 10.0),
        "y": (2, 10.0),
        "z": (1, 0.5),
    }
    assert values["CONFTEST_DERIVED"] == 10  # from the environment's CONFTEST_COUNT


def test_the_default_rates_are_not_changed_by_a_merge(env):
    env(CONFTEST_RATES="y=1/1")
    assert from_environment(sample)["CONFTEST_RATES"]["y"] == (1, 1.0)
    assert sample.knobs["CONFTEST_RATES"].default["y"] == (2, 10.0)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("CONFTEST_ON", "maybe", "must be 1 or 0"),
        ("CONFTEST_COUNT", "1.5", "must be an integer"),
        ("CONFTEST_COUNT", "0", "must be >= 1"),
        ("CONFTEST_SECONDS", "soon", "must be a number"),
        ("CONFTEST_SECONDS", "0.01", "must be >= 0.1"),
        ("CONFTEST_MODE", "c", "must be one of a, b"),
        ("CONFTEST_RATES", "x.send", "type=count/seconds"),
        ("CONFTEST_RATES", "x.send=10", "type=count/seconds"),
        ("CONFTEST_RATES", "x.send=many/10", "type=count/seconds"),
        ("CONFTEST_RATES", "x.send=0/10", "count >= 1"),
        ("CONFTEST_RATES", "x.send=5/0", "seconds > 0"),
        ("CONFTEST_RATES", "=5/1", "type=count/seconds"),
    ],
)
def test_a_bad_value_names_the_variable(env, name, raw, message):
    env(**{name: raw})
    with pytest.raises(ImproperlyConfigured, match=name) as caught:
        from_environment(sample)
    assert message in str(caught.value) and repr(raw) in str(caught.value)


def test_only_the_given_apps_knobs_are_returned(env):
    env(HEARTBEAT_QUICK="1")
    values = from_environment(realtime_settings)
    assert "HEARTBEAT_QUICK" in values and "CONFTEST_COUNT" not in values
    assert "SESSION_GAP_WAIT" not in values


# -------------------------------------------------------------------- quick heartbeat
def test_the_heartbeat_defaults(env):
    values = from_environment(realtime_settings)
    assert values["HEARTBEAT_QUICK"] is False
    assert (values["HEARTBEAT_INTERVAL"], values["PONG_TIMEOUT"]) == (30, 10)
    assert values["PRESENCE_TTL"] == 60


def test_quick_mode_overrides_the_two_heartbeat_times(env):
    env(HEARTBEAT_QUICK="1", HEARTBEAT_INTERVAL="99", PONG_TIMEOUT="42")
    values = from_environment(realtime_settings)
    assert (values["HEARTBEAT_INTERVAL"], values["PONG_TIMEOUT"]) == (5, 3)
    assert values["PRESENCE_TTL"] == 15


def test_quick_mode_only_changes_the_presence_ttl_default(env):
    env(HEARTBEAT_QUICK="1", PRESENCE_TTL="7")
    assert from_environment(realtime_settings)["PRESENCE_TTL"] == 7


def test_quick_mode_still_refuses_a_bad_heartbeat_time(env):
    env(HEARTBEAT_QUICK="1", HEARTBEAT_INTERVAL="soon")
    with pytest.raises(ImproperlyConfigured, match="HEARTBEAT_INTERVAL"):
        from_environment(realtime_settings)


def test_the_endpoint_throttles_merge_one_type(env, monkeypatch):
    monkeypatch.setenv("SESSION_THROTTLES", "chat.send=200/10")
    throttles = from_environment(sessions_settings)["SESSION_THROTTLES"]
    assert throttles["chat.send"] == (200, 10.0)
    assert throttles["typing"] == (5, 1.0)
