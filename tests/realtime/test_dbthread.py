"""realtime.dbthread: database calls on one thread, answered on the loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async

from realtime import dbthread
from realtime.dbthread import DatabaseThread, database_thread, to_database_thread

# The thread checks its connection after each call: the database must be allowed.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

_var: contextvars.ContextVar[str] = contextvars.ContextVar("test_var", default="-")


def _thread_name() -> str:
    return threading.current_thread().name


class Gate:
    """A call that holds the database thread until the test releases it."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def hold(self, then: object = None) -> object:
        self.started.set()
        self.release.wait(5)
        return then

    async def held(self) -> None:
        """Wait, off the loop, until the thread runs ``hold``."""
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, self.started.wait, 5)


async def test_calls_run_on_the_one_database_thread_in_the_order_asked():
    done: list[int] = []

    def record(i: int) -> str:
        done.append(i)
        return _thread_name()

    names = await asyncio.gather(*(to_database_thread(record)(i) for i in range(50)))
    assert set(names) == {database_thread.name} != {_thread_name()}
    assert done == list(range(50))


async def test_asgiref_s_thread_sensitive_calls_share_the_thread():
    """Channels' database_sync_to_async and a test's sync_to_async: the same thread
    as the sockets' calls (one connection, as before)."""
    ours = await to_database_thread(_thread_name)()
    assert await database_sync_to_async(_thread_name)() == ours
    assert await sync_to_async(_thread_name)() == ours


async def test_a_call_s_exception_reaches_its_caller_and_the_thread_goes_on():
    def fail() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        await to_database_thread(fail)()
    assert await to_database_thread(lambda: 42)() == 42


async def test_the_caller_s_context_is_copied_and_nothing_leaks_back():
    def read_and_set() -> str:
        seen = _var.get()
        _var.set("set inside")
        return seen

    token = _var.set("the socket's")
    try:
        assert await to_database_thread(read_and_set)() == "the socket's"
        assert _var.get() == "the socket's"
    finally:
        _var.reset(token)


async def test_async_to_sync_in_a_call_uses_the_caller_s_loop_nested_calls_the_thread():
    """A call that, through async_to_sync, makes another database call: the inner
    one runs on the database thread while the outer waits (asgiref's routing)."""
    loop = asyncio.get_running_loop()

    async def on_loop() -> bool:
        return asyncio.get_running_loop() is loop

    async def nested() -> str:
        return await to_database_thread(_thread_name)()

    assert await to_database_thread(async_to_sync(on_loop))() is True
    # Broken, the inner call would block the shared thread: every later test here
    # would time out too, the first failure is the one to read.
    inner = await asyncio.wait_for(to_database_thread(async_to_sync(nested))(), 5)
    assert inner == database_thread.name
    channels_way = database_sync_to_async(async_to_sync(nested))()
    assert await asyncio.wait_for(channels_way, 5) == database_thread.name


async def test_a_cancelled_caller_stops_waiting_and_the_call_still_runs():
    gate = Gate()
    ran: list[str] = []

    def slow() -> str:
        gate.hold()
        ran.append("slow")
        return "late"

    waiting = asyncio.ensure_future(to_database_thread(slow)())
    await gate.held()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.release.set()
    assert await to_database_thread(lambda: "next")() == "next"
    assert ran == ["slow"]


def test_an_answer_for_a_closed_loop_is_dropped_and_the_thread_serves_the_next():
    thread = DatabaseThread("test-db")
    gate = Gate()

    async def ask_and_leave() -> None:
        asyncio.ensure_future(thread.call(gate.hold, (1,), {}))  # never awaited
        await gate.held()

    asyncio.run(ask_and_leave())  # the loop closes with the call in progress
    gate.release.set()

    async def ask() -> int:
        return await thread.call(lambda: 2, (), {})

    assert asyncio.run(ask()) == 2


def test_under_a_synchronous_caller_the_call_runs_in_the_caller_s_thread():
    """async_to_sync from a test or a command: its thread, connection, transaction."""
    assert async_to_sync(to_database_thread(_thread_name))() == _thread_name()


async def test_connections_are_checked_after_each_call(monkeypatch):
    steps: list[str] = []
    monkeypatch.setattr(
        dbthread, "close_old_connections", lambda: steps.append("check")
    )

    def fail() -> None:
        steps.append("call")
        raise ValueError

    await to_database_thread(steps.append)("call")
    with pytest.raises(ValueError):
        await to_database_thread(fail)()
    assert steps == ["call", "check", "call", "check"]


async def test_a_call_whose_caller_left_before_it_started_is_not_run():
    gate = Gate()
    ran: list[str] = []
    first = asyncio.ensure_future(to_database_thread(gate.hold)())
    await gate.held()
    queued = asyncio.ensure_future(to_database_thread(ran.append)("queued"))
    await asyncio.sleep(0)  # the queued call is on the thread's queue
    assert database_thread.jobs.qsize() == 1
    queued.cancel()
    gate.release.set()
    await first
    await to_database_thread(ran.append)("next")
    assert ran == ["next"]


async def test_a_stop_iteration_reaches_the_caller_as_a_runtime_error():
    def stop() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await asyncio.wait_for(to_database_thread(stop)(), 5)


async def test_a_submitted_job_that_was_cancelled_first_does_not_run():
    thread = DatabaseThread("test-db-2")
    gate = Gate()
    ran: list[int] = []
    blocker = thread.submit(gate.hold)
    queued = thread.submit(ran.append, 1)
    await gate.held()
    assert queued.cancel()
    gate.release.set()
    blocker.result(5)
    failing = thread.submit(int, "not a number")
    with pytest.raises(ValueError):
        failing.result(5)
    assert ran == []


async def test_after_a_fork_the_child_starts_a_thread_of_its_own():
    """What ``os.register_at_fork`` runs in a forked child: the parent's thread is
    not there, so the first call starts a new one (and a fresh queue)."""
    thread = DatabaseThread("test-db-fork")
    assert await thread.call(_thread_name, (), {}) == "test-db-fork"
    parents = thread.thread, thread.jobs
    thread._after_fork()
    assert thread.thread is None
    assert await thread.call(_thread_name, (), {}) == "test-db-fork"
    assert thread.thread is not parents[0] and thread.jobs is not parents[1]


async def test_a_stop_iteration_through_asgiref_reaches_the_caller_too():
    def stop() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await asyncio.wait_for(sync_to_async(stop)(), 5)
