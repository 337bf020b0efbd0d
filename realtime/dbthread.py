"""The database thread: where the sockets' ORM work runs, one call at a time, in order.

Django's ORM is synchronous and its connections belong to a thread, so a consumer
hands each database call to a thread of its own and awaits the answer. Channels'
``database_sync_to_async`` does that through asgiref's ``SyncToAsync``: per call a
``ThreadPoolExecutor`` work item with its own future and condition, an asyncio
future chained to it behind a ``shield``, the context copied out and back, and
thread-locals set and cleared. Measured on the bench machine (docs/performance.md):
~50 µs of CPU per call with 50 calls in flight, against 6-9 µs for a queue, one thread
and one callback on the loop per answer; in a storm of first connects the database
thread was a third of the server's core, for ~0.2 ms of SQL per connect.

``to_database_thread(fn)`` has ``database_sync_to_async``'s shape:
``await to_database_thread(fn)(*args, **kwargs)``. What it keeps of it:

* one thread for every socket's calls, run in the order they were asked; a call whose
  caller was cancelled before it started is not run (as an executor's);
* ``close_old_connections()`` after each call: a connection that broke or outlived
  ``CONN_MAX_AGE`` is dropped (with PostgreSQL, ``CONN_MAX_AGE=0``: the connection
  goes back to the pool after each call). Channels also checks before each call, in
  case the connection aged while the thread was idle (3.7 µs a check here);
* the caller's context variables, copied, so a call's log lines carry its socket's
  fields (asgiref also copies back what a call sets: nothing here sets one for its
  caller, and no asgiref ``Local`` set on the loop, such as an active translation, is
  carried over);
* ``async_to_sync`` inside a call runs on the caller's event loop (asgiref's
  thread-local, which its ``SyncToAsync`` sets for the same purpose), and a database
  call made from there runs on this thread while the outer call waits;
* under a synchronous caller waiting in ``async_to_sync`` (a test, a command), the
  call runs in that caller's thread, on its connection and in its transaction.
  The last two are asgiref's own routing: such calls are handed to Channels'
  ``database_sync_to_async``, which checks the connection before and after, so a
  nested call inside the outer call's ``atomic()`` can close its connection under it
  (as with asgiref: do not nest a database call in a transaction). A task started
  from such a coroutine inherits the waiting thread's executor, and its calls after
  the outer call returned raise ``RuntimeError`` (as with asgiref).

A caller that is cancelled once its call has started stops waiting; the call runs to
its end (a thread cannot be interrupted, with asgiref neither) and its answer is
dropped. The thread is a daemon: a server stops once its sockets are closed, their
calls awaited; a call cut short at exit rolls back, as any transaction. A forked child
starts a thread of its own.

The thread is also asgiref's executor for thread-sensitive calls made outside an HTTP
request (``RealtimeConfig.ready`` sets it): Channels' ``database_sync_to_async`` and
``sync_to_async`` in a test run on it as well, so that, as before, one thread holds
the sockets' database connection (two connections into SQLite's shared in-memory
test database would lock each other's tables).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import AsyncToSync, SyncToAsync
from channels.db import database_sync_to_async
from django.db import close_old_connections

from realtime import clock

P = ParamSpec("P")
R = TypeVar("R")

# True in a call's own copy of its caller's context, and so in whatever a call runs
# on the loop through ``async_to_sync`` while it waits: a database call from there
# must run on the waiting thread (``_sync_caller_waits``).
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "inside_database_call", default=False
)

# (loop, its future, context, fn, args, kwargs); an executor's job has no loop and no
# context, and a concurrent future.
Job = tuple[
    asyncio.AbstractEventLoop | None,
    asyncio.Future | Future,
    contextvars.Context | None,
    Callable[..., Any],
    tuple,
    dict,
]


class DatabaseThread(Executor):
    """One thread and its queue of calls; the answers go back to each caller's loop.

    Also a ``concurrent.futures.Executor`` (``submit``) for asgiref's calls."""

    def __init__(self, name: str = "database") -> None:
        self.name = name
        self.jobs: SimpleQueue[Job] = SimpleQueue()
        self.thread: threading.Thread | None = None
        self._starting = threading.Lock()
        # When the call in progress started (``clock.monotonic``); None when idle.
        self.busy_since: float | None = None
        self.running_submitted = False  # an asgiref job (``submit``) is running
        ref = weakref.ref(self)  # the hook must not keep a test's thread alive
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    def _after_fork(self) -> None:
        # The parent's thread does not exist in the child; its queue's lock may be
        # held by it.
        self.jobs = SimpleQueue()
        self.thread = None
        self._starting = threading.Lock()

    def call(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> asyncio.Future:
        """Queue ``fn(*args, **kwargs)``; the future is the caller loop's."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self.thread is None:
            self._start()
        self.jobs.put((loop, future, contextvars.copy_context(), fn, args, kwargs))
        return future

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """``Executor.submit``, for asgiref: a job with no loop, run as it comes with
        nothing around it (asgiref's calls bring their own context, and Channels'
        its connection checks)."""
        future: Future = Future()
        if self.thread is None:
            self._start()
        self.jobs.put((None, future, None, fn, args, kwargs))
        return future

    def busy_for(self) -> float:
        """Seconds the call in progress has run (0 when idle): ``/readyz`` fails a
        process whose database thread is stuck (every socket's calls wait on it)."""
        since = self.busy_since
        return 0.0 if since is None else max(0.0, clock.monotonic() - since)

    def _start(self) -> None:
        with self._starting:
            if self.thread is None:
                thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                thread.start()
                self.thread = thread

    def _run(self) -> None:
        local = SyncToAsync.threadlocal  # where asgiref's async_to_sync finds a loop
        local.main_event_loop_pid = os.getpid()
        while True:
            job = self.jobs.get()
            self.busy_since = clock.monotonic()
            try:
                self._do(local, *job)
            finally:
                self.busy_since = None
            del job  # nothing of a finished call is kept while the thread waits

    def _do(
        self,
        local: Any,
        loop: asyncio.AbstractEventLoop | None,
        future: Any,
        context: contextvars.Context | None,
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict,
    ) -> None:
        if loop is None:  # asgiref's job (``submit``): its future, nothing around it
            if future.set_running_or_notify_cancel():
                self.running_submitted = True
                try:
                    ok, value = _outcome(fn, *args, **kwargs)
                finally:
                    self.running_submitted = False
                _settle(future, ok, value)
            return
        if future.cancelled():  # its caller left before it started
            return
        local.main_event_loop = loop
        local.task_context = None  # an asgiref job's, before this one
        ok, value = _outcome(_checked, context, fn, args, kwargs)
        try:
            loop.call_soon_threadsafe(_settle, future, ok, value)
        except RuntimeError:  # the caller's loop is closed: nobody waits
            pass


def _checked(
    context: contextvars.Context, fn: Callable[..., Any], args: tuple, kwargs: dict
) -> Any:
    """``fn`` in the caller's context, then the connection checked."""
    try:
        return context.run(_inside_call, fn, args, kwargs)
    finally:
        close_old_connections()


def _inside_call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    _inside.set(True)
    return fn(*args, **kwargs)


def _outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """``(True, value)`` or ``(False, exception)``: whatever a call raises is its
    caller's to handle."""
    try:
        return True, call(*args, **kwargs)
    except StopIteration as exc:  # no future takes it (asyncio's caller would hang)
        error = RuntimeError("a database call raised StopIteration")
        error.__cause__ = exc
        return False, error
    except BaseException as exc:
        return False, exc


def _settle(future: asyncio.Future | Future, ok: bool, value: Any) -> None:
    if future.done():  # a cancelled caller no longer waits
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _after_fork(ref: weakref.ref) -> None:
    thread = ref()
    if thread is not None:
        thread._after_fork()


database_thread = DatabaseThread()


def _sync_caller_waits() -> bool:
    """Whether a synchronous caller waits below this call in ``async_to_sync``: one
    of our calls (``_inside``), a test's or a command's (the loop was made for it),
    or an asgiref job on the thread (its context carries the waiting thread's
    executor). asgiref then runs thread-sensitive calls in that waiting thread, as
    they must be: it cannot take another call until this one is answered. Asking
    asgiref costs ~3 µs (its ``Local``), so only while one of its jobs runs."""
    return (
        _inside.get()
        or asyncio.get_running_loop() in AsyncToSync.loop_thread_executors
        or (
            database_thread.running_submitted
            and getattr(AsyncToSync.executors, "current", None) is not None
        )
    )


def to_database_thread(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``fn`` as a coroutine function that runs it on the database thread."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        if _sync_caller_waits():
            return await database_sync_to_async(fn)(*args, **kwargs)
        return await database_thread.call(fn, args, kwargs)

    return call
