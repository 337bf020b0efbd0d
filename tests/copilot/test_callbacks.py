"""The reference agent's callback scenarios over a real consumer (PROTOCOL §7)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from tests.conftest import access_token, recv, recv_type, send
from tests.copilot.helpers import (
    COSTS,
    ITEMS,
    ask,
    joined,
    no_frame,
    open_copilot,
    read_answer,
    reply,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def test_basic_chain_data_then_api_then_response(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "How are my Monthly_Costs?", request_id="c-1")
    assert query_id.startswith("q-") and len(query_id) > 12
    request = await recv_type(comm, "request_available_data")
    assert request["payload"] == {"query_id": query_id}
    assert request["request_id"].startswith("srv-")
    await reply(comm, request, "available_data", {"items": ITEMS})
    api = await recv_type(comm, "request_api")
    assert api["payload"] == {
        "query_id": query_id,
        "method": "GET",
        "path": "/local/costs",
        "params": {},
    }
    assert api["request_id"] != request["request_id"]
    await reply(comm, api, "api_result", {"status": 200, "body": COSTS})
    deltas, response = await read_answer(comm, query_id)
    text = "monthly_costs (/local/costs) holds 2 records with fields month, amount."
    assert response == {
        "query_id": query_id,
        "text": text,
        "sources": [{"name": "monthly_costs", "path": "/local/costs"}],
    }
    assert len(deltas) > 3 and joined(deltas) == text
    assert [d["index"] for d in deltas] == list(range(1, len(deltas) + 1))
    await comm.disconnect()


async def test_clarification_when_no_item_is_named(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "what do I have?")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": ITEMS})
    question = await recv_type(comm, "clarification_request")
    assert question["payload"] == {
        "query_id": query_id,
        "question": "Which data should I use?",
        "options": ["monthly_costs", "instances"],
    }
    await reply(comm, question, "human_response", {"answer": "Instances"})
    api = await recv_type(comm, "request_api")
    assert api["payload"]["path"] == "/local/instances"
    await reply(comm, api, "api_result", {"status": 200, "body": [{"id": 1}]})
    _, response = await read_answer(comm, query_id)
    assert (
        response["text"]
        == "instances (/local/instances) holds 1 record with fields id."
    )
    await comm.disconnect()


async def test_clarification_among_the_items_named(token):
    items = [*ITEMS, {"name": "budgets", "path": "/local/budgets"}]
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "compare budgets and instances")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": items})
    question = await recv_type(comm, "clarification_request")
    assert question["payload"]["options"] == ["instances", "budgets"]
    await reply(comm, question, "human_response", {"answer": "the budgets one"})
    api = await recv_type(comm, "request_api")
    assert api["payload"]["path"] == "/local/budgets"
    await reply(comm, api, "api_result", {"status": 200, "body": {"total": 5}})
    _, response = await read_answer(comm, query_id)
    assert (
        response["text"]
        == "budgets (/local/budgets) holds an object with fields total."
    )
    await comm.disconnect()


async def test_clarification_answer_that_matches_nothing(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "anything")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": ITEMS})
    question = await recv_type(comm, "clarification_request")
    await reply(comm, question, "human_response", {"answer": "neither"})
    _, response = await read_answer(comm, query_id)
    assert (
        response["text"]
        == "I could not match 'neither' to any of monthly_costs, instances."
    )
    await comm.disconnect()


async def test_single_item_needs_no_clarification(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "anything")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": ITEMS[:1]})
    api = await recv_type(comm, "request_api")
    await reply(comm, api, "api_result", {"status": 404, "body": {"detail": "gone"}})
    _, response = await read_answer(comm, query_id)
    assert response["text"] == (
        "The local API answered 404 for GET /local/costs (monthly_costs)."
    )
    await comm.disconnect()


async def test_item_without_a_path(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "notes")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": [{"name": "notes"}]})
    _, response = await read_answer(comm, query_id)
    assert response == {
        "query_id": query_id,
        "text": "notes has no path I could query.",
        "sources": [{"name": "notes"}],
    }
    await comm.disconnect()


async def test_empty_data(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "monthly_costs")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": []})
    deltas, response = await read_answer(comm, query_id)
    assert response["text"].startswith("No data is available")
    assert "sources" not in response
    assert joined(deltas) == response["text"]
    await comm.disconnect()


async def test_no_reply_times_out_and_the_agent_explains(token, settings):
    settings.CALLBACK_TIMEOUT = 0.3
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "monthly_costs")
    request = await recv_type(comm, "request_available_data")
    timeout = await recv_type(comm, "error")
    assert timeout["payload"]["code"] == "TIMEOUT"
    assert timeout["request_id"] == request["request_id"]
    _, response = await read_answer(comm, query_id)
    assert "list of available data was not received in time" in response["text"]
    await comm.disconnect()


async def test_late_reply_after_timeout_is_unknown_request(token, settings):
    settings.CALLBACK_TIMEOUT = 0.3
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "monthly_costs")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": ITEMS})
    api = await recv_type(comm, "request_api")
    assert (await recv_type(comm, "error"))["payload"]["code"] == "TIMEOUT"
    _, response = await read_answer(comm, query_id)
    assert (
        "GET /local/costs for monthly_costs was not received in time"
        in (response["text"])
    )
    await reply(comm, api, "api_result", {"status": 200, "body": []})  # too late
    late = await recv_type(comm, "error")
    assert late["payload"]["code"] == "UNKNOWN_REQUEST"
    assert late["request_id"] == api["request_id"]
    await comm.disconnect()


async def test_clarification_timeout(token, settings):
    settings.CALLBACK_TIMEOUT = 0.3
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "what?")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": ITEMS})
    await recv_type(comm, "clarification_request")
    assert (await recv_type(comm, "error"))["payload"]["code"] == "TIMEOUT"
    _, response = await read_answer(comm, query_id)
    assert "choice between monthly_costs, instances was not made" in response["text"]
    await comm.disconnect()


async def test_unknown_request_id(token):
    comm, _ = await open_copilot(token)
    await send(comm, "available_data", {"items": []}, request_id="srv-made-up")
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "UNKNOWN_REQUEST"
    assert error["request_id"] == "srv-made-up"
    await send(comm, "api_result", {"status": 200})  # no request_id at all
    assert (await recv_type(comm, "error"))["payload"]["code"] == "INVALID_MESSAGE"
    await comm.disconnect()


async def test_reused_request_id(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "x")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": []})
    await read_answer(comm, query_id)
    await reply(comm, request, "available_data", {"items": []})
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "UNKNOWN_REQUEST"
    await comm.disconnect()


async def test_foreign_request_id_from_another_connection(make_user):
    alice = await sync_to_async(make_user)("alice")
    mallory = await sync_to_async(make_user)("mallory")
    a, _ = await open_copilot(access_token(alice))
    m, _ = await open_copilot(access_token(mallory))
    query_id = await ask(a, "monthly_costs")
    request = await recv_type(a, "request_available_data")
    await reply(m, request, "available_data", {"items": [{"name": "evil"}]})
    assert (await recv_type(m, "error"))["payload"]["code"] == "UNKNOWN_REQUEST"
    # Even the same user's other socket cannot answer it.
    a2, _ = await open_copilot(access_token(alice))
    await reply(a2, request, "available_data", {"items": []})
    assert (await recv_type(a2, "error"))["payload"]["code"] == "UNKNOWN_REQUEST"
    # The rightful owner still can.
    await reply(a, request, "available_data", {"items": []})
    _, response = await read_answer(a, query_id)
    assert response["text"].startswith("No data is available")
    for comm in (a, m, a2):
        await comm.disconnect()


async def test_reply_of_the_wrong_type(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "x")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "human_response", {"answer": "hi"})
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert "expects available_data" in error["payload"]["message"]
    await reply(comm, request, "available_data", {"items": []})  # still pending
    await read_answer(comm, query_id)
    await comm.disconnect()


@pytest.mark.parametrize(
    ("type_", "payload", "field"),
    [
        ("available_data", {"items": "nope"}, "payload.items"),
        ("available_data", {}, "payload.items"),
        ("api_result", {"status": "200", "body": {}}, "payload.status"),
        ("api_result", {"status": 99}, "payload.status"),
        ("human_response", {"answer": 1}, "payload.answer"),
    ],
)
async def test_invalid_replies_name_the_field(token, type_, payload, field):
    comm, _ = await open_copilot(token)
    await send(comm, type_, payload, request_id="srv-x")
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert error["payload"]["message"].startswith(field)
    await comm.disconnect()


async def test_several_queries_in_flight_and_pings_while_waiting(token):
    comm, _ = await open_copilot(token)
    first = await ask(comm, "monthly_costs")
    req1 = await recv_type(comm, "request_available_data")
    second = await ask(comm, "instances")
    req2 = await recv_type(comm, "request_available_data")
    assert req1["payload"]["query_id"] == first
    assert req2["payload"]["query_id"] == second
    await send(comm, "ping", {"waiting": True})
    assert (await recv_type(comm, "pong"))["payload"] == {"waiting": True}
    # Answer the second first: the two queries do not wait on each other.
    await reply(comm, req2, "available_data", {"items": ITEMS})
    api2 = await recv_type(comm, "request_api")
    await reply(comm, api2, "api_result", {"status": 200, "body": []})
    _, response2 = await read_answer(comm, second)
    assert response2["text"].startswith("instances")
    await reply(comm, req1, "available_data", {"items": []})
    _, response1 = await read_answer(comm, first)
    assert response1["text"].startswith("No data")
    await comm.disconnect()


async def test_cancel_a_query_waiting_on_a_callback(token):
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "monthly_costs")
    request = await recv_type(comm, "request_available_data")
    await send(comm, "query.cancel", {"query_id": query_id})
    response = await recv_type(comm, "response")
    assert response["payload"] == {"query_id": query_id, "text": "", "cancelled": True}
    await reply(comm, request, "available_data", {"items": []})
    assert (await recv_type(comm, "error"))["payload"]["code"] == "UNKNOWN_REQUEST"
    await send(comm, "query.cancel", {"query_id": query_id}, request_id="k-2")
    missing = await recv_type(comm, "error")
    assert missing["payload"]["code"] == "NOT_FOUND"
    assert missing["request_id"] == "k-2"
    await comm.disconnect()


async def test_cancel_right_after_query_before_the_agent_starts(token):
    comm, _ = await open_copilot(token)
    await send(comm, "query", {"text": "x"})
    await send(comm, "query.cancel", {"query_id": "q-unknown"})
    accepted = await recv_type(comm, "query.accepted")
    # The agent runs as a task: its request and the cancel's answer come in any order.
    frames = {f["type"]: f for f in [await recv(comm), await recv(comm)]}
    assert set(frames) == {"request_available_data", "error"}
    assert frames["error"]["payload"]["code"] == "NOT_FOUND"
    query_id = accepted["payload"]["query_id"]
    await send(comm, "query.cancel", {"query_id": query_id})
    response = await recv_type(comm, "response")
    assert response["payload"]["cancelled"] is True
    await comm.disconnect()


async def test_cancel_a_query_of_another_user_is_not_found(make_user):
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    a, _ = await open_copilot(access_token(alice))
    b, _ = await open_copilot(access_token(bob))
    query_id = await ask(a, "x")
    request = await recv_type(a, "request_available_data")
    await send(b, "query.cancel", {"query_id": query_id})
    assert (await recv_type(b, "error"))["payload"]["code"] == "NOT_FOUND"
    await reply(a, request, "available_data", {"items": []})
    _, response = await read_answer(a, query_id)
    assert "cancelled" not in response
    await a.disconnect()
    await b.disconnect()


async def test_query_of_4001_characters_is_invalid(token):
    comm, _ = await open_copilot(token)
    await send(comm, "query", {"text": "x" * 4001}, request_id="big")
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert error["payload"]["message"].startswith("payload.text")
    assert error["request_id"] == "big"
    query_id = await ask(comm, "x" * 4000)  # the limit itself is fine
    assert query_id
    await comm.disconnect()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"text": ""},
        {"text": 5},
        {"text": "x", "context": []},
        {"text": "x", "y": 1},
    ],
)
async def test_malformed_queries(token, payload):
    comm, _ = await open_copilot(token)
    await send(comm, "query", payload)
    assert (await recv_type(comm, "error"))["payload"]["code"] == "INVALID_MESSAGE"
    await comm.disconnect()


async def test_context_reaches_the_agent(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.test_callbacks.ContextAgent"
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "hi", context={"page": "/costs", "n": 2})
    _, response = await read_answer(comm, query_id)
    assert response["text"] == "hi from /costs, user ok"
    await comm.disconnect()


class ContextAgent:  # resolved through COPILOT_AGENT above
    pass


from realtime.copilot.agents import Agent  # noqa: E402


class ContextAgent(Agent):  # noqa: F811
    async def run(self, query, io):
        user = "ok" if query.user_id else "missing"
        await io.respond(f"{query.text} from {query.context['page']}, user {user}")


async def test_agent_without_respond_gets_its_deltas_as_the_answer(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.SilentAgent"
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "x")
    deltas, response = await read_answer(comm, query_id)
    assert [d["delta"] for d in deltas] == ["half ", "answer"]
    assert response == {"query_id": query_id, "text": "half answer"}
    await comm.disconnect()


async def test_agent_bug_answers_internal_and_ends_the_query(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.BrokenAgent"
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "x", request_id="b-1")
    assert (await recv_type(comm, "response.delta"))["payload"]["delta"] == "oops "
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "INTERNAL"
    assert "trace" in error["payload"]["message"]
    assert error["request_id"] == "b-1"
    response = await recv_type(comm, "response")
    assert response["payload"] == {
        "query_id": query_id,
        "text": "oops ",
        "error": "INTERNAL",
    }
    await send(comm, "ping", {})
    assert (await recv_type(comm, "pong"))["type"] == "pong"
    await comm.disconnect()


@pytest.mark.parametrize(
    ("agent", "code"),
    [
        ("RefusingAgent", "FORBIDDEN"),
        ("DomainRefusingAgent", "FORBIDDEN"),
        ("TimeoutBugAgent", "INTERNAL"),
        ("DoubleAgent", "INTERNAL"),
    ],
)
async def test_agent_errors_are_reported(token, settings, agent, code):
    settings.COPILOT_AGENT = f"tests.copilot.agents.{agent}"
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "x")
    frames = [await recv(comm) for _ in range(2)]
    types = sorted(frame["type"] for frame in frames)
    if agent == "DoubleAgent":  # the first answer stands, the second is a bug
        assert types == ["error", "response"]
        assert frames[0]["payload"] == {"query_id": query_id, "text": "one"}
    else:
        assert [f["type"] for f in frames] == ["error", "response"]
        assert frames[1]["payload"]["error"] == code
    assert next(f for f in frames if f["type"] == "error")["payload"]["code"] == code
    await comm.disconnect()


async def test_unhandled_callback_timeout_ends_the_query(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.GreedyAgent"
    settings.CALLBACK_TIMEOUT = 0.2
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "x")
    await recv_type(comm, "request_available_data")
    assert (await recv_type(comm, "error"))["payload"]["code"] == "TIMEOUT"
    response = await recv_type(comm, "response")
    assert response["payload"] == {"query_id": query_id, "text": "", "error": "TIMEOUT"}
    await comm.disconnect()


async def test_query_time_limit(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.SleepyAgent"
    settings.COPILOT_QUERY_TIMEOUT = 0.3
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "x")
    deltas, response = await read_answer(comm, query_id)
    assert response == {"query_id": query_id, "text": "thinking ", "error": "TIMEOUT"}
    await comm.disconnect()


async def test_clarification_without_options(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.ClarifyFreeformAgent"
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "x")
    question = await recv_type(comm, "clarification_request")
    assert question["payload"] == {"query_id": query_id, "question": "Anything to add?"}
    await reply(comm, question, "human_response", {"answer": "no"})
    _, response = await read_answer(comm, query_id)
    assert response["text"] == "you said no"
    assert await no_frame(comm)
    await comm.disconnect()


async def test_disconnect_while_waiting_finishes_the_query_detached(token):
    from realtime.copilot import runs

    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "monthly_costs")
    await recv_type(comm, "request_available_data")
    run = runs.RUNNING[query_id]
    await comm.disconnect()
    await asyncio.wait_for(run.task, 3)  # the pending callback fails at once
    assert run.log.final["text"].startswith("I could not answer")
    assert query_id not in runs.RUNNING
