"""``QueryRun`` on its own, with a stand-in for the consumer that owns it."""

from __future__ import annotations

import asyncio

import pytest

from realtime.copilot import runs
from realtime.copilot.agents import Agent, Query
from realtime.copilot.resume import delta_log_read
from realtime.copilot.runs import QueryRun, new_query_id


class FakeConsumer:
    def __init__(self):
        self.closing = False
        self.runs: dict = {}
        self.frames: list[tuple[str, dict]] = []

    async def send_frame(self, type_, payload, request_id=None):
        self.frames.append((type_, payload))

    async def send_error(self, error, request_id=None):
        self.frames.append(("error", error.payload()))


class Chatty(Agent):
    async def run(self, query, io):
        await io.delta("")  # nothing: no frame, no index
        await io.delta("a")
        await io.respond("a")


def make_run(agent) -> tuple[QueryRun, FakeConsumer]:
    consumer = FakeConsumer()
    query = Query(query_id=new_query_id(), text="t", user_id=5)
    run = QueryRun(
        owner=consumer,
        agent=agent,
        query=query,
        request_id="r-1",
        on_end=lambda ended: consumer.runs.pop(ended.query_id),
    )
    consumer.runs[query.query_id] = run
    return run, consumer


def test_query_ids_are_random_and_safe_for_group_names():
    ids = {new_query_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(qid.startswith("q-") and len(qid) == 18 for qid in ids)


async def test_empty_deltas_are_skipped():
    run, consumer = make_run(Chatty())
    run.start()
    await asyncio.wait_for(run.task, 2)
    assert consumer.frames == [
        ("response.delta", {"query_id": run.query_id, "delta": "a", "index": 1}),
        ("response", {"query_id": run.query_id, "text": "a"}),
    ]
    assert consumer.runs == {} and run.query_id not in runs.RUNNING


async def test_cancel_before_the_task_first_runs():
    run, consumer = make_run(Chatty())
    run.start()
    run.cancel()  # same loop step: the task has not started yet
    assert not run.started
    await asyncio.wait_for(run.task, 2)
    assert consumer.frames == [
        ("response", {"query_id": run.query_id, "text": "", "cancelled": True})
    ]
    view = delta_log_read(query_id=run.query_id, user_id=5)
    assert view.final == consumer.frames[0][1]


async def test_shutdown_cancellation_propagates():
    class Forever(Agent):
        async def run(self, query, io):
            await asyncio.sleep(30)

    run, consumer = make_run(Forever())
    run.start()
    await asyncio.sleep(0)
    run.task.cancel()  # not a query.cancel: the loop is going away
    with pytest.raises(asyncio.CancelledError):
        await run.task
    assert consumer.frames == []
    assert run.query_id not in runs.RUNNING
