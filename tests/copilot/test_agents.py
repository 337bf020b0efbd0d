"""The agent interface's helpers and loader, and the reference agent on a fake IO."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from realtime.callbacks import CallbackTimeout
from realtime.copilot.agents import (
    Agent,
    ApiResult,
    Query,
    ReferenceAgent,
    describe_body,
    load_agent,
    match_answer,
    named_items,
    words,
)
from tests.copilot.helpers import ITEMS


@pytest.mark.parametrize(
    "text", ["one two  three", "  lead", "trail  ", "", "x", "a\nb\tc"]
)
def test_words_join_back(text):
    chunks = words(text)
    assert "".join(chunks) == text
    assert all(chunk.strip() for chunk in chunks)


def test_words_are_word_sized():
    assert words("How are you?") == ["How ", "are ", "you?"]


def test_named_items_and_answers():
    assert named_items("MONTHLY_COSTS now", ITEMS) == [ITEMS[0]]
    assert named_items("both monthly_costs and instances", ITEMS) == ITEMS
    assert named_items("neither", ITEMS) == []
    assert match_answer(" Instances ", ITEMS) == ITEMS[1]
    assert match_answer("use monthly_costs please", ITEMS) == ITEMS[0]
    assert match_answer("monthly_costs and instances", ITEMS) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "0 records"),
        ([{"a": 1}], "1 record with fields a"),
        ([{"a": 1}, {"b": 2, "a": 3}, "x"], "3 records with fields a, b"),
        ({"items": [1, 2]}, "2 records"),
        ({"data": [{"k": 1}]}, "1 record with fields k"),
        ({"results": []}, "0 records"),
        ({"total": 3, "unit": "EUR"}, "an object with fields total, unit"),
        ({}, "an empty object"),
        (None, "no body"),
        (42, "the value 42"),
        ("ok", "the value 'ok'"),
    ],
)
def test_describe_body(body, expected):
    assert describe_body(body) == expected


def test_load_agent(settings):
    settings.COPILOT_AGENT = "realtime.copilot.agents.ReferenceAgent"
    assert isinstance(load_agent(), ReferenceAgent)
    with pytest.raises(ImproperlyConfigured, match="COPILOT_AGENT='nowhere.X'"):
        load_agent("nowhere.X")
    with pytest.raises(ImproperlyConfigured, match="not an Agent subclass"):
        load_agent("realtime.copilot.agents.Query")
    with pytest.raises(ImproperlyConfigured, match="not an Agent subclass"):
        load_agent("realtime.copilot.agents.words")


async def test_base_agent_must_be_subclassed():
    with pytest.raises(NotImplementedError):
        await Agent().run(Query("q", "t", 1), None)


class ScriptedIO:
    """An AgentIO whose answers are scripted; records what the agent did."""

    def __init__(self, items=(), api=None, answer=None):
        self.items, self.api, self.answer = items, api, answer
        self.calls: list[tuple] = []
        self.deltas: list[str] = []
        self.response = None

    async def request_available_data(self):
        self.calls.append(("data",))
        if isinstance(self.items, Exception):
            raise self.items
        return list(self.items)

    async def request_api(self, method, path, params=None):
        self.calls.append(("api", method, path))
        if isinstance(self.api, Exception):
            raise self.api
        return self.api

    async def clarify(self, question, options=None):
        self.calls.append(("clarify", tuple(options)))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def delta(self, text):
        self.deltas.append(text)

    async def respond(self, text, sources=None):
        assert "".join(self.deltas) == text  # the deltas add up to the answer
        self.response = (text, sources)


async def run(text, io):
    await ReferenceAgent().run(Query("q-1", text, 1), io)
    return io.response


async def test_reference_agent_is_deterministic():
    for _ in range(3):
        io = ScriptedIO(items=ITEMS, api=ApiResult(200, [{"a": 1}]))
        assert await run("monthly_costs", io) == (
            "monthly_costs (/local/costs) holds 1 record with fields a.",
            [{"name": "monthly_costs", "path": "/local/costs"}],
        )
        assert io.calls == [("data",), ("api", "GET", "/local/costs")]


async def test_reference_agent_ignores_items_without_a_name():
    io = ScriptedIO(items=[{"path": "/x"}, {"name": "  "}, {"name": 3}])
    text, _ = await run("x", io)
    assert text.startswith("No data is available")


async def test_reference_agent_timeouts_explain_what_was_missing():
    timeout = CallbackTimeout("srv-1", 0.1)
    io = ScriptedIO(items=timeout)
    assert "list of available data" in (await run("x", io))[0]
    io = ScriptedIO(items=ITEMS, answer=timeout)
    assert "choice between monthly_costs, instances" in (await run("x", io))[0]
    io = ScriptedIO(items=ITEMS, api=timeout)
    text, sources = await run("instances", io)
    assert "GET /local/instances for instances" in text
    assert sources == [{"name": "instances", "path": "/local/instances"}]
