"""This process's chat messages and questions from sockets, stored a batch per trip
to the database thread (group commit: ``realtime.batching``)."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async

from realtime.batching import BatchQueue
from realtime.looplocal import per_loop
from sessions_app import notify
from sessions_app.services import messages_post

logger = logging.getLogger(__name__)

# Bounds how long one transaction holds the session's row (or SQLite's) write lock.
MAX_BATCH = 100


async def _store(posts: list[dict[str, Any]]) -> list[Any]:
    """``messages_post`` on the database thread, then each new message to its
    session, in seq order, before any sender goes on."""
    results = await database_sync_to_async(messages_post)(posts=posts)
    for result in results:
        if isinstance(result, Exception) or not result[1]:
            continue
        try:
            await notify.message_stored(result[0])
        except Exception:  # stored: its readers catch up with ``since``
            logger.exception("message %s stored but not pushed", result[0].pk)
    return results


def new_post_queue() -> BatchQueue:
    """A queue of posts: ``await queue.submit(**message_post_kwargs)``."""
    return BatchQueue(_store, max_batch=MAX_BATCH)


post_queue = per_loop(new_post_queue)  # this event loop's queue
