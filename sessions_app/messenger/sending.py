"""This process's socket sends, stored a batch per trip to the database thread
(group commit: ``realtime.batching``)."""

from __future__ import annotations

from typing import Any

from realtime.batching import BatchQueue
from realtime.looplocal import per_loop
from sessions_app.messenger import notify
from sessions_app.messenger.messaging import messages_send

# Bounds how long one transaction holds the database's write lock (~0.1 ms a send).
MAX_BATCH = 100


async def _store(sends: list[dict[str, Any]]) -> list[Any]:
    """``messages_send`` on the database thread; what the batch pushes after commit
    is sent from the event loop (``notify.deferred``) before any sender goes on."""
    return await notify.deferred(messages_send, sends=sends)


def new_send_queue() -> BatchQueue:
    """A queue of sends: ``await queue.submit(**message_send_kwargs)``."""
    return BatchQueue(_store, max_batch=MAX_BATCH)


send_queue = per_loop(new_send_queue)  # this event loop's queue
