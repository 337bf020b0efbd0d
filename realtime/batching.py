"""Group commit: writes that arrive while the previous batch is being stored go
together, in one transaction and one commit (``BatchQueue`` on the event loop,
``store_together`` on the database thread).

A commit costs more than the write it ends (SQLite syncs its journal and flushes a
search index; PostgreSQL waits for its WAL flush), and an endpoint's writes all go
through the one database thread. ``BatchQueue`` sends a write alone when nothing is
in flight, as without it; under load the batch grows by itself, up to
``max_batch`` (which bounds how long one transaction holds the write lock). Each
caller gets its own result or its own error.

The endpoint gives the queue ``run``: a coroutine storing a list of writes (each a
caller's keyword arguments) and returning one result per write, in order, a refused
write's error in its place. ``run`` also sends what the batch pushes, in order,
before any caller goes on: seqs leave in the order they were assigned, and a
sender hears its own message first, as when it was stored alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from django.db import connection, transaction

from realtime.errors import DomainError

logger = logging.getLogger("realtime.batching")
T = TypeVar("T")

Run = Callable[[list[dict[str, Any]]], Awaitable[list[Any]]]


class BatchQueue:
    """One event loop's queue of one kind of write (made ``per_loop``)."""

    def __init__(self, run: Run, *, max_batch: int = 100) -> None:
        self.run = run
        self.max_batch = max_batch
        self.waiting: list[tuple[dict[str, Any], asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def submit(self, **kwargs: Any) -> Any:
        """Store one write in the next batch: its result, or raise its error."""
        return await self.post(**kwargs)

    def post(self, **kwargs: Any) -> asyncio.Future:
        """``submit`` without waiting: the future of the write's result (a caller
        that does not await it reads its exception, e.g. in a done callback)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((kwargs, future))
        if self.task is None:
            # A context of its own: not the first caller's (log fields, pushes).
            self.task = asyncio.create_task(
                self._drain(), context=contextvars.Context()
            )
        return future

    async def settled(self) -> None:
        """Wait until every write posted so far has its answer."""
        while self.task is not None:
            await asyncio.shield(self.task)

    async def _drain(self) -> None:
        batch: list[tuple[dict[str, Any], asyncio.Future]] = []
        try:
            while self.waiting:
                batch = self.waiting[: self.max_batch]
                del self.waiting[: self.max_batch]
                try:
                    results = await self.run([kwargs for kwargs, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(
                            f"{len(results)} results for a batch of {len(batch)}"
                        )
                except Exception as error:  # each of its callers answers it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its socket went away meanwhile
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        except BaseException:  # cancelled: the loop is going away
            for _, future in (*batch, *self.waiting):
                future.cancel()
            self.waiting.clear()
            raise
        finally:
            self.task = None


def store_together(
    items: Sequence[T],
    *,
    store: Callable[[Any, T], Any],
    alone: Callable[[T], Any],
    lock_order: Callable[[T], Hashable],
) -> list[Any]:
    """Each item ``store(cursor, item)``d in one transaction; one result per item,
    in the items' order, a refusal (``DomainError``) in its item's place.

    ``store`` must leave the transaction as it found it when it refuses (write
    nothing first, or use a savepoint): the others go on. Items are stored in
    ``lock_order`` (stable, so each key's items keep their order): every process
    takes the rows' locks in one order, so two batches never deadlock. If the
    transaction fails before its commit (a database error, not a refusal), each
    item is stored again alone by ``alone(item)``; if the commit itself fails, its
    outcome is unknown and storing again could store twice, so every item gets
    the error.
    """
    results: list[Any] = [None] * len(items)
    committing = False
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for index in sorted(range(len(items)), key=lambda i: lock_order(items[i])):
                try:
                    results[index] = store(cursor, items[index])
                except DomainError as refused:
                    results[index] = refused
            committing = True
    except Exception as error:
        if committing:
            logger.warning("a batch of %d failed at its commit", len(items))
            return [error] * len(items)
        logger.info("a batch of %d failed; each is stored alone", len(items))
        results = []
        for item in items:
            try:
                results.append(alone(item))
            except Exception as each:  # the caller raises it, in its handler
                results.append(each)
    return results
