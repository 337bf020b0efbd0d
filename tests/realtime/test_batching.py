"""realtime.batching.BatchQueue: each caller gets its own answer, whatever ``run``
does, and nobody is left waiting."""

from __future__ import annotations

import asyncio

import pytest

from realtime.batching import BatchQueue

pytestmark = pytest.mark.timeout(10)


async def test_writes_arriving_meanwhile_go_together_each_answered():
    batches = []

    async def run(writes):
        batches.append([w["n"] for w in writes])
        await asyncio.sleep(0)
        return [ValueError(w["n"]) if w["n"] == 2 else w["n"] * 10 for w in writes]

    queue = BatchQueue(run, max_batch=2)
    results = await asyncio.wait_for(
        asyncio.gather(*(queue.submit(n=n) for n in range(5)), return_exceptions=True),
        5,
    )
    assert batches == [[0, 1], [2, 3], [4]]
    assert results[:2] == [0, 10] and results[3:] == [30, 40]
    assert isinstance(results[2], ValueError)
    assert queue.task is None and queue.waiting == []


async def test_a_run_answering_too_few_fails_each_caller_instead_of_hanging():
    async def run(writes):
        return writes[:-1]

    queue = BatchQueue(run)
    results = await asyncio.wait_for(
        asyncio.gather(queue.submit(n=1), queue.submit(n=2), return_exceptions=True),
        5,
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert "1 results for a batch of 2" in str(results[0])
    assert (await asyncio.wait_for(BatchQueue(_echo).submit(n=3), 5)) == {"n": 3}


async def _echo(writes):
    return writes


async def test_cancelling_the_queue_cancels_the_batch_and_those_waiting():
    started = asyncio.Event()

    async def stuck(writes):
        started.set()
        await asyncio.sleep(60)

    queue = BatchQueue(stuck)
    first = asyncio.ensure_future(queue.submit(n=1))
    await asyncio.wait_for(started.wait(), 5)
    waiting = asyncio.ensure_future(queue.submit(n=2))  # behind the stuck batch
    await asyncio.sleep(0)
    queue.task.cancel()
    for future in (first, waiting):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(future, 5)
    assert queue.task is None and queue.waiting == []
