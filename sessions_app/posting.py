"""This process's chat messages and questions from sockets, stored a batch per trip
to the database thread (group commit: ``realtime.batching``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from realtime.batching import BatchQueue, store_together
from realtime.dbthread import to_database_thread
from realtime.looplocal import per_loop
from sessions_app import notify, services
from sessions_app.models import Message

logger = logging.getLogger(__name__)

# Bounds how long one transaction holds the session's row (or SQLite's) write lock.
MAX_BATCH = 100


def messages_post(
    *, posts: Sequence[Mapping[str, Any]]
) -> list[tuple[Message, bool] | Exception]:
    """Several posts (each ``message_post``'s keyword arguments) in one transaction
    and one commit (``store_together``): one result per post, in order,
    ``(message, created)`` or the error that refused it. Each post is its own
    savepoint (``message_post``'s atomic, nested), so a refused one takes no seq;
    sessions' rows are locked in id order.
    """
    return store_together(
        posts,
        store=lambda cursor, post: services.message_post(**post),
        alone=lambda post: services.message_post(**post),
        lock_order=lambda post: post["session_id"],
    )


async def _store(posts: list[dict[str, Any]]) -> list[Any]:
    """``messages_post`` on the database thread, then each new message to its
    session, in seq order, before any sender goes on."""
    results = await to_database_thread(messages_post)(posts=posts)
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
