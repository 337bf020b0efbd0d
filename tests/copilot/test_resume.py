"""Resumable answers: the delta log, and ``query.resume`` after a dropped socket."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache

from realtime.copilot import runs
from realtime.copilot.resume import DeltaLog, delta_log_read, resume_ttl
from tests.conftest import access_token, recv, recv_type, send
from tests.copilot.agents import LONG_ANSWER
from tests.copilot.helpers import ITEMS, ask, open_copilot, read_answer, reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

FULL = "".join(LONG_ANSWER)


# ------------------------------------------------------------------ the log itself
def test_log_round_trip():
    log = DeltaLog(query_id="q-1", user_id=7)
    log.open()
    assert delta_log_read(query_id="q-1", user_id=7).count == 0
    assert [log.append(text) for text in ("a", "b", "c")] == [1, 2, 3]
    view = delta_log_read(query_id="q-1", user_id=7, after=1)
    assert (view.count, view.deltas, view.final) == (3, ["b", "c"], None)
    assert delta_log_read(query_id="q-1", user_id=7, after=5).deltas == []
    assert delta_log_read(query_id="q-1", user_id=7, upto=2).deltas == ["a", "b"]
    log.close({"query_id": "q-1", "text": "abc"})
    view = delta_log_read(query_id="q-1", user_id=7, after=3)
    assert view.deltas == [] and view.final == {"query_id": "q-1", "text": "abc"}


def test_log_is_bound_to_its_user_and_expires_whole():
    log = DeltaLog(query_id="q-2", user_id=7)
    log.open()
    log.append("a")
    assert delta_log_read(query_id="q-2", user_id=8) is None
    assert delta_log_read(query_id="q-nope", user_id=7) is None
    cache.delete("copilot:log:q-2:1")  # evicted: a gap cannot be resumed
    assert delta_log_read(query_id="q-2", user_id=7) is None


async def test_batched_log_flushes_after_its_delay_and_on_close():
    log = DeltaLog(query_id="q-4", user_id=7, delay=0.05)
    log.open()
    assert [log.append(text) for text in ("a", "b")] == [1, 2]
    assert delta_log_read(query_id="q-4", user_id=7).count == 0  # not yet visible
    for _ in range(100):  # the flush is due 50 ms after the first append
        await asyncio.sleep(0.01)
        if delta_log_read(query_id="q-4", user_id=7).count:
            break
    assert delta_log_read(query_id="q-4", user_id=7).deltas == ["a", "b"]
    log.append("c")
    log.close({"query_id": "q-4", "text": "abc"})  # flushes what is pending first
    view = delta_log_read(query_id="q-4", user_id=7)
    assert view.deltas == ["a", "b", "c"] and view.final["text"] == "abc"


async def test_batched_log_flushes_a_full_batch_at_once(monkeypatch):
    from realtime.copilot import resume

    monkeypatch.setattr(resume, "MAX_BATCH", 3)
    log = DeltaLog(query_id="q-5", user_id=7, delay=60)
    log.open()
    for text in "abc":
        log.append(text)
    assert delta_log_read(query_id="q-5", user_id=7).count == 3
    log.flush()  # nothing pending: no write
    assert log._timer is None


def test_delta_keys_outlive_the_meta_key(settings):
    settings.COPILOT_RESUME_TTL, settings.COPILOT_QUERY_TIMEOUT = 0.4, 30
    assert resume_ttl() == 1  # whole seconds, at least one (Redis TTLs are integers)
    log = DeltaLog(query_id="q-3", user_id=7)
    assert log.ttl == 1 and log.delta_ttl == 1 + 30 + 60


# ------------------------------------------------------------------ over the socket
async def test_resume_after_a_dropped_connection_loses_no_delta(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.BriskAgent"
    first, _ = await open_copilot(token)
    query_id = await ask(first, "story")
    got = [(await recv_type(first, "response.delta"))["payload"] for _ in range(10)]
    await first.disconnect()  # dropped mid-answer; the query goes on detached
    assert query_id in runs.RUNNING

    second, _ = await open_copilot(token)
    await send(
        second, "query.resume", {"query_id": query_id, "after": 10}, request_id="r-1"
    )
    resumed = await recv_type(second, "query.resumed")
    assert resumed["request_id"] == "r-1"
    assert resumed["payload"]["query_id"] == query_id
    assert resumed["payload"]["after"] == 10
    assert resumed["payload"]["done"] is False
    # Stored so far: may trail what the client got by the log's 50 ms batching.
    assert resumed["payload"]["count"] < len(LONG_ANSWER)
    rest, response = await read_answer(second, query_id, timeout=5)
    indexes = [d["index"] for d in got + rest]
    assert indexes == list(range(1, len(LONG_ANSWER) + 1))  # no gap, no duplicate
    assert "".join(d["delta"] for d in got + rest) == FULL
    assert response == {
        "query_id": query_id,
        "text": FULL,
        "sources": [{"name": "slow"}],
    }
    await second.disconnect()


async def test_resume_a_finished_answer_replays_it(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.BriskAgent"
    settings.SINGLE_SESSION_PER_USER = True  # the old socket is replaced, 4009
    first, _ = await open_copilot(token)
    query_id = await ask(first, "story")
    await recv_type(first, "response.delta")
    second, _ = await open_copilot(token)
    await asyncio.wait_for(runs.RUNNING[query_id].task, 10)
    await send(second, "query.resume", {"query_id": query_id})
    resumed = await recv_type(second, "query.resumed")
    assert resumed["payload"] == {
        "query_id": query_id,
        "after": 0,
        "count": len(LONG_ANSWER),
        "done": True,
    }
    deltas, response = await read_answer(second, query_id)
    assert "".join(d["delta"] for d in deltas) == response["text"] == FULL
    await first.disconnect()
    await second.disconnect()


async def test_resume_of_unknown_foreign_or_expired_queries(make_user, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.QuickAgent"
    settings.COPILOT_RESUME_TTL = 1
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    a, _ = await open_copilot(access_token(alice))
    b, _ = await open_copilot(access_token(bob))
    query_id = await ask(a, "x")
    await read_answer(a, query_id)
    await send(b, "query.resume", {"query_id": query_id}, request_id="r-b")
    error = await recv_type(b, "error")
    assert error["payload"]["code"] == "NOT_FOUND" and error["request_id"] == "r-b"
    await send(a, "query.resume", {"query_id": "q-never-was"})
    assert (await recv_type(a, "error"))["payload"]["code"] == "NOT_FOUND"
    await asyncio.sleep(1.2)  # past COPILOT_RESUME_TTL
    await send(a, "query.resume", {"query_id": query_id})
    assert (await recv_type(a, "error"))["payload"]["code"] == "NOT_FOUND"
    await a.disconnect()
    await b.disconnect()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"query_id": "q-1", "after": -1},
        {"query_id": "bad id"},
        {"query_id": "q-1", "after": "3"},
    ],
)
async def test_malformed_resume(token, payload):
    comm, _ = await open_copilot(token)
    await send(comm, "query.resume", payload)
    assert (await recv_type(comm, "error"))["payload"]["code"] == "INVALID_MESSAGE"
    await comm.disconnect()


async def test_resume_on_the_same_socket_replays_without_duplicates(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.BriskAgent"
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "story")
    for _ in range(5):
        await recv_type(comm, "response.delta")
    await send(comm, "query.resume", {"query_id": query_id, "after": 2})
    # Deltas sent before the resume was read may still be on their way.
    frame = await recv(comm)
    while frame["type"] == "response.delta":
        frame = await recv(comm)
    assert frame["type"] == "query.resumed"
    deltas, _ = await read_answer(comm, query_id, timeout=5)
    indexes = [d["index"] for d in deltas]
    assert indexes == list(range(3, len(LONG_ANSWER) + 1))
    await comm.disconnect()


async def test_resume_twice_follows_once(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.BriskAgent"
    first, _ = await open_copilot(token)
    query_id = await ask(first, "story")
    await recv_type(first, "response.delta")
    await first.disconnect()
    second, _ = await open_copilot(token)
    for after in (0, 1):
        await send(second, "query.resume", {"query_id": query_id, "after": after})
    frames = []
    while not frames or frames[-1]["type"] != "response":
        frames.append(await recv(second, timeout=5))
    resumed = [i for i, f in enumerate(frames) if f["type"] == "query.resumed"]
    assert len(resumed) == 2
    after_second = [
        f["payload"]["index"]
        for f in frames[resumed[1] + 1 :]
        if f["type"] == "response.delta"
    ]
    assert after_second == list(range(2, len(LONG_ANSWER) + 1))
    assert sum(f["type"] == "response" for f in frames) == 1
    await second.disconnect()


async def test_cancel_a_resumed_detached_query(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.SleepyAgent"
    first, _ = await open_copilot(token)
    query_id = await ask(first, "x")
    await recv_type(first, "response.delta")
    await first.disconnect()
    second, _ = await open_copilot(token)
    await send(second, "query.resume", {"query_id": query_id})
    await recv_type(second, "query.resumed")
    assert (await recv_type(second, "response.delta"))["payload"]["index"] == 1
    await send(second, "query.cancel", {"query_id": query_id})
    response = await recv_type(second, "response")
    assert response["payload"] == {
        "query_id": query_id,
        "text": "thinking ",
        "cancelled": True,
    }
    await second.disconnect()


async def test_a_detached_query_cannot_call_back_and_says_so(token):
    first, _ = await open_copilot(token)
    query_id = await ask(first, "monthly_costs")
    request = await recv_type(first, "request_available_data")
    await reply(first, request, "available_data", {"items": ITEMS})
    await recv_type(first, "request_api")
    await first.disconnect()  # the pending request_api cannot be answered now
    second, _ = await open_copilot(token)
    await send(second, "query.resume", {"query_id": query_id})
    await recv_type(second, "query.resumed")
    _, response = await read_answer(second, query_id)
    assert response["text"] == (
        "I could not answer: the result of GET /local/costs for monthly_costs was "
        "not received in time."
    )
    await second.disconnect()


async def test_callbacks_after_detach_fail_at_once(user):
    from realtime.copilot.agents import Query
    from realtime.copilot.runs import ClientGone, QueryRun

    class Closed:
        closing = True

    run = QueryRun(
        owner=Closed(), agent=None, query=Query("q-x", "t", user.pk), request_id=None
    )
    with pytest.raises(ClientGone, match="request_api: the client is gone"):
        await run.request_api("GET", "/x")
    await run.delta("kept ")  # logged, not sent
    await run.respond("kept", [])
    assert run.log.count == 1 and run.log.final == {"query_id": "q-x", "text": "kept"}
    with pytest.raises(RuntimeError, match="after respond"):
        await run.delta("late")


async def test_log_expiring_while_following_is_not_found(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.SleepyAgent"
    first, _ = await open_copilot(token)
    query_id = await ask(first, "x")
    await recv_type(first, "response.delta")
    await first.disconnect()
    second, _ = await open_copilot(token)
    await send(second, "query.resume", {"query_id": query_id}, request_id="r-9")
    await recv_type(second, "query.resumed")
    await recv_type(second, "response.delta")
    cache.delete(f"copilot:log:{query_id}")
    error = await recv_type(second, "error")
    assert error["payload"]["code"] == "NOT_FOUND"
    assert "expired while resuming" in error["payload"]["message"]
    assert error["request_id"] == "r-9"
    await second.disconnect()


async def test_following_gives_up_on_a_query_that_never_ends(
    user, token, settings, monkeypatch
):
    from realtime.copilot import consumer

    settings.COPILOT_QUERY_TIMEOUT = 0.2
    monkeypatch.setattr(consumer, "resume_ttl", lambda: 0)
    log = DeltaLog(query_id="q-orphan", user_id=user.pk, ttl=60)
    log.open()  # its server process died: no one will ever close it
    log.append("lost ")
    comm, _ = await open_copilot(token)
    started = time.monotonic()
    await send(comm, "query.resume", {"query_id": "q-orphan"})
    await recv_type(comm, "query.resumed")
    assert (await recv_type(comm, "response.delta"))["payload"]["delta"] == "lost "
    error = await recv_type(comm, "error")
    assert "stopped without an answer" in error["payload"]["message"]
    assert time.monotonic() - started < 2
    await comm.disconnect()
