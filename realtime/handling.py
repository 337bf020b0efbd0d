"""How a handler's outcome becomes the client's answer, and how a socket is closed
from inside one.

A ``RealtimeError`` or a domain error (``realtime.errors``) is an ``error`` frame; a
``CloseConnection`` closes the socket with its code; the database not answering is
``Unavailable`` (retryable); anything else is a bug: logged with the connection's
trace id, answered ``INTERNAL`` with the same id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from time import perf_counter
from typing import Any

from django.db import InterfaceError, OperationalError

from realtime.errors import DomainError, Unavailable, realtime_error
from realtime.protocol import CloseCode, InternalError, RealtimeError

logger = logging.getLogger("realtime.consumer")


class CloseConnection(Exception):
    """Raised from ``on_connect`` (or a handler) to close the socket with ``code``."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(reason or f"close {code}")
        self.code = int(code)


async def guard(
    consumer: Any, coro: Coroutine, request_id: str | None, timer: Any = None
) -> None:
    """Run a handler of ``consumer``: a refusal becomes an error frame, a bug
    ``INTERNAL``; ``timer``, a histogram child, observes how long it took."""
    started = perf_counter()
    try:
        await coro
    except RealtimeError as exc:
        await consumer.send_error(exc, request_id=request_id)
    except DomainError as exc:
        await consumer.send_error(realtime_error(exc), request_id=request_id)
    except CloseConnection as exc:
        await consumer.close_with(exc.code)
    except consumer.quiet_errors:
        pass  # already answered where it happened (a callback's TIMEOUT)
    except (OperationalError, InterfaceError) as exc:
        # The database did not answer (down, cut off): the handler's transaction
        # was rolled back, so the client may retry; not a bug with a trace.
        logger.warning("database unavailable conn=%s: %s", consumer.conn_id, exc)
        await consumer.send_error(realtime_error(Unavailable()), request_id=request_id)
    except Exception:
        # The client's trace is the one on this failure's log lines (and on
        # every other line of its connection): a log query by it finds them.
        trace = consumer.conn_id
        logger.exception(
            "handler failed trace=%s conn=%s",
            trace,
            consumer.conn_id,
            extra=consumer.log_context(),
        )
        await consumer.send_error(
            InternalError(f"internal error (trace {trace})"), request_id=request_id
        )
    finally:
        if timer is not None:
            timer.observe(perf_counter() - started)


def code_name(code: int) -> str:
    """``4012`` → ``going away``: a close code's name, for people."""
    try:
        return CloseCode(code).name.lower().replace("_", " ")
    except ValueError:
        return ""


def event_handler(type_: str) -> str:
    """``stream.frame`` → ``event_stream_frame``: the hub events' own namespace."""
    return "event_" + type_.replace(".", "_")


def spawn_task(coro: Coroutine, owner: dict[asyncio.Task, None]) -> asyncio.Task:
    """``coro`` as a task kept in ``owner`` while it runs (a dict used as a set: an
    empty one is 64 bytes, an empty ``set`` 216, and most sockets have none)."""
    task = asyncio.ensure_future(coro)
    owner[task] = None
    task.add_done_callback(lambda done: owner.pop(done, None))
    return task
