"""realtime.batching.BatchQueue: each caller gets its own answer, whatever ``run``
does, and nobody is left waiting."""

from __future__ import annotations

import asyncio

import pytest
from django.db import DatabaseError, OperationalError

from realtime.batching import BatchQueue, store_together
from realtime.errors import NotFound

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


# ------------------------------------------------------------- store_together
@pytest.mark.django_db(transaction=True)
def test_items_are_stored_in_lock_order_and_answered_in_theirs():
    seen = []

    def store(cursor, item):
        seen.append(item)
        if item[1] == "refused":
            raise NotFound("no such room")
        return item[1].upper()

    items = [("b", "one"), ("a", "two"), ("b", "refused"), ("a", "three")]
    results = store_together(
        items, store=store, alone=lambda item: 1 / 0, lock_order=lambda item: item[0]
    )
    # Every batch takes rows' locks in one order (a before b); a key's items keep
    # their own order.
    assert seen == [("a", "two"), ("a", "three"), ("b", "one"), ("b", "refused")]
    assert results[:2] == ["ONE", "TWO"] and results[3] == "THREE"
    assert isinstance(results[2], NotFound)


@pytest.mark.django_db(transaction=True)
def test_a_transaction_failing_before_commit_stores_each_alone():
    def store(cursor, item):
        if item == 2:
            raise DatabaseError("deadlock detected")
        return item

    results = store_together(
        [1, 2, 3], store=store, alone=lambda item: -item, lock_order=lambda item: 0
    )
    assert results == [-1, -2, -3]


@pytest.mark.django_db(transaction=True)
def test_a_failed_commit_fails_every_item_and_stores_nothing_again(monkeypatch):
    from django.db import connection

    def commit():
        raise OperationalError("the connection died at commit")

    monkeypatch.setattr(connection, "commit", commit)
    alone = []
    results = store_together(
        [1, 2], store=lambda cursor, item: item, alone=alone.append, lock_order=str
    )
    assert alone == []  # its outcome is unknown: storing again could store twice
    assert all(isinstance(r, OperationalError) for r in results)
