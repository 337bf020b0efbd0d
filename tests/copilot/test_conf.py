"""The copilot's knobs: one default each, from the environment, read at use."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from realtime.conf import from_environment
from realtime.copilot.conf import copilot_settings
from realtime.copilot.resume import query_timeout, resume_ttl


@pytest.fixture
def clean_env(monkeypatch):
    for name in copilot_settings.knobs:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_from_an_empty_environment(clean_env):
    values = from_environment(copilot_settings)
    assert set(values) == set(copilot_settings.knobs)
    assert (values["COPILOT_RATE_LIMIT"], values["COPILOT_RATE_WINDOW"]) == (10, 60)
    assert values["SHARE_RATE_LIMIT"] is True
    assert values["SINGLE_SESSION_PER_USER"] is False
    assert values["COPILOT_AGENT"] == "realtime.copilot.agents.ReferenceAgent"
    assert (values["COPILOT_RESUME_TTL"], values["COPILOT_QUERY_TIMEOUT"]) == (120, 300)
    assert values["COPILOT_AUDIO_QUEUE_CHUNKS"] == 64


def test_environment_values_are_parsed_by_kind(clean_env):
    clean_env.setenv("SINGLE_SESSION_PER_USER", "1")
    clean_env.setenv("COPILOT_RATE_WINDOW", "2.5")
    clean_env.setenv("COPILOT_LLM_URL", "http://127.0.0.1:8080/v1")
    values = from_environment(copilot_settings)
    assert values["SINGLE_SESSION_PER_USER"] is True
    assert values["COPILOT_RATE_WINDOW"] == 2.5
    assert values["COPILOT_LLM_URL"] == "http://127.0.0.1:8080/v1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COPILOT_MAX_IN_FLIGHT", "0"),
        ("COPILOT_QUERY_TIMEOUT", "soon"),
        ("COPILOT_AUDIO_MAX_SPEED", "0.5"),
        ("SHARE_RATE_LIMIT", "maybe"),
    ],
)
def test_bad_environment_values_name_the_variable(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        from_environment(copilot_settings)


def test_knobs_are_read_at_use(settings):
    settings.COPILOT_QUERY_TIMEOUT = 0.3  # tests shorten it: read as a float
    settings.COPILOT_RESUME_TTL = 0.4
    assert query_timeout() == 0.3
    assert resume_ttl() == 1  # whole seconds, at least one (a cache TTL)
    del settings.COPILOT_QUERY_TIMEOUT
    assert query_timeout() == 300
