"""The drain: its spread, closes 4012 for all, 4013 and /readyz 503 meanwhile."""

from __future__ import annotations

import asyncio
import random

import pytest
from django.test import AsyncClient

from realtime import recent
from realtime.connection import connections, open_consumers
from realtime.drain import Drainer, drain, drain_schedule, drain_times, is_draining
from tests.conftest import closed_with, communicator, recv

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _serving():
    """Every test starts (and leaves the process) serving, with an empty ring."""
    connections.draining = False
    recent.clear()
    yield
    connections.draining = False
    recent.clear()


# ---------------------------------------------------------------------- the spread
def test_schedule_puts_one_socket_in_each_slice_of_the_window():
    rng = random.Random(7).random
    offsets = drain_schedule(count=40, window=10.0, rng=rng)
    assert len(offsets) == 40
    assert offsets == sorted(offsets)
    for index, offset in enumerate(offsets):
        assert index * 0.25 <= offset < (index + 1) * 0.25  # its own slice
    # Jittered, not on a fixed beat: the points within their slices differ.
    assert len({round(offset % 0.25, 6) for offset in offsets}) > 30


def test_schedule_edges():
    assert drain_schedule(count=0, window=10.0) == []
    assert drain_schedule(count=3, window=0.0) == [0.0, 0.0, 0.0]
    assert drain_schedule(count=2, window=4.0, rng=lambda: 0.5) == [1.0, 3.0]


def test_deadline_is_never_before_the_end_of_the_window(settings):
    settings.DRAIN_WINDOW, settings.DRAIN_DEADLINE = 10, 3
    assert drain_times() == (10.0, 10.0)
    settings.DRAIN_DEADLINE = 25
    assert drain_times() == (10.0, 25.0)


# ---------------------------------------------------------------------- on sockets
async def _echo(token: str):
    comm = communicator("/ws/echo/", token=token)
    assert (await comm.connect())[0]
    assert (await recv(comm))["type"] == "echo.ready"
    return comm


@pytest.mark.django_db(transaction=True)
async def test_every_socket_closes_4012_at_its_time_on_the_clock(token, fake_clock):
    comms = [await _echo(token) for _ in range(4)]
    start = fake_clock.now()

    async def fake_sleep(seconds: float) -> None:
        fake_clock.advance(seconds)
        await asyncio.sleep(0)

    async def watch(comm) -> int:
        code = await closed_with(comm, timeout=5)
        await comm.disconnect()
        return code

    watchers = [asyncio.ensure_future(watch(comm)) for comm in comms]
    result = await drain(window=8.0, deadline=12.0, sleep=fake_sleep, rng=lambda: 0.5)
    assert await asyncio.gather(*watchers) == [4012] * 4
    events = recent.recent_events()
    assert [e["code"] for e in events] == [4012] * 4
    # One in the middle of each 2 s slice of the 8 s window.
    assert [round(e["at"] - start, 3) for e in events] == [1.0, 3.0, 5.0, 7.0]
    assert result.closed == 4
    assert result.left == 0
    assert result.seconds < 12.0
    assert not open_consumers


@pytest.mark.django_db(transaction=True)
async def test_new_sockets_get_4013_and_readyz_503_while_draining(token, settings):
    settings.DRAIN_WINDOW, settings.DRAIN_DEADLINE = 0.5, 3
    old = await _echo(token)
    drainer_done = asyncio.Event()
    drainer = Drainer(stop=drainer_done.set)
    drainer.signalled()
    await asyncio.sleep(0)
    assert is_draining()
    reply = await AsyncClient().get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["status"] == "draining"
    late = communicator("/ws/echo/", token=token)
    assert (await late.connect())[0]
    assert await closed_with(late) == 4013
    await late.disconnect()
    assert await closed_with(old, timeout=5) == 4012
    await old.disconnect()
    await asyncio.wait_for(drainer_done.wait(), 5)
    assert drainer.result is not None and drainer.result.left == 0
    reasons = {(e["code"], e["reason"]) for e in recent.recent_events()}
    assert reasons == {(4013, "draining"), (4012, "draining")}


async def test_a_second_signal_stops_at_once(settings):
    settings.DRAIN_WINDOW, settings.DRAIN_DEADLINE = 30, 30
    stops: list[int] = []
    drainer = Drainer(stop=lambda: stops.append(1))
    drainer.signalled()
    drainer.signalled()
    assert stops == [1]  # before the drain has even begun
    await drainer.task  # no sockets: done at once, and stops again (servers ignore)
    assert stops == [1, 1]
    assert drainer.result.closed == 0


async def test_a_failing_drain_still_stops(monkeypatch):
    import realtime.drain as drain_module

    async def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(drain_module, "drain", broken)
    stopped = asyncio.Event()
    drainer = Drainer(stop=stopped.set)
    drainer.signalled()
    await asyncio.wait_for(stopped.wait(), 2)


@pytest.mark.django_db(transaction=True)
async def test_one_failing_close_does_not_stop_the_rest(token, monkeypatch):
    a, b = await _echo(token), await _echo(token)
    first = next(iter(c for c in open_consumers if c.started))

    async def broken(code: int) -> None:
        raise RuntimeError("socket gone")

    monkeypatch.setattr(first, "close_with", broken)
    (second,) = [c for c in open_consumers if c.started and c is not first]
    result = await drain(window=0.05, deadline=0.2)
    assert result.closed == 2
    assert second.closing and not first.closing
    for comm in (a, b):
        await comm.disconnect()


def test_the_ring_keeps_one_entry_per_close_and_takes_errors():
    class Socket:
        endpoint, conn_id = "echo", "c1"

    recent.record_close(Socket(), 4012, "draining")
    recent.record_close(Socket(), 4012, "draining")  # a second layer, same close
    recent.record_error(Socket(), "INTERNAL", "trace abc")
    assert [(e["kind"], e["code"]) for e in recent.recent_events()] == [
        ("close", 4012),
        ("error", "INTERNAL"),
    ]
