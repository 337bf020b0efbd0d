"""COPILOT_RATE_LIMIT per COPILOT_RATE_WINDOW, shared per user or per connection."""

from __future__ import annotations

import time

import pytest

from realtime.copilot import runs
from tests.conftest import recv, recv_type, send
from tests.copilot.helpers import open_copilot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def _quick(settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.QuickAgent"
    settings.COPILOT_RATE_LIMIT, settings.COPILOT_RATE_WINDOW = 10, 60


@pytest.fixture
def fake_clock(fake_clock):
    """The shared fake clock, which starts 20 s into a 60 s window."""
    assert fake_clock.now() % 60 == 20  # 1,700,000,000 = 60 * 28,333,333 + 20
    return fake_clock


async def query_outcome(comm, text: str = "q") -> dict:
    """Send a query; the ``query.accepted`` or ``error`` frame it gets."""
    await send(comm, "query", {"text": text}, request_id="r-1")
    while True:
        frame = await recv(comm)
        if frame["type"] in ("query.accepted", "error"):
            assert frame["request_id"] == "r-1"
            return frame
        assert frame["type"] in ("response", "response.delta", "ping"), frame


async def test_ten_queries_pass_the_eleventh_and_twelfth_are_limited(token, fake_clock):
    comm, greeting = await open_copilot(token)
    assert greeting["payload"]["rate_limit"]["remaining"] == 10
    for expected in range(9, -1, -1):
        frame = await query_outcome(comm)
        assert frame["type"] == "query.accepted"
        assert frame["payload"]["remaining"] == expected
    for _ in range(2):
        frame = await query_outcome(comm)
        assert frame["type"] == "error"
        assert frame["payload"]["code"] == "RATE_LIMITED"
        assert frame["payload"]["retry_after"] == 40.0  # to the end of the window
    await send(comm, "ping", {})  # the socket is fine
    assert (await recv_type(comm, "pong", skip=("ping", "response")))["type"] == "pong"
    await comm.disconnect()


async def test_window_reset_with_a_fake_clock(token, fake_clock):
    comm, _ = await open_copilot(token)
    for _ in range(10):
        assert (await query_outcome(comm))["type"] == "query.accepted"
    fake_clock.advance(39.9)
    limited = await query_outcome(comm)
    assert limited["payload"]["code"] == "RATE_LIMITED"
    assert limited["payload"]["retry_after"] == pytest.approx(0.1, abs=1e-3)
    fake_clock.advance(0.1)  # the next window
    frame = await query_outcome(comm)
    assert frame["type"] == "query.accepted"
    assert frame["payload"]["remaining"] == 9
    await comm.disconnect()


async def test_shared_limit_counts_every_socket_of_the_user(
    token, settings, fake_clock
):
    settings.SHARE_RATE_LIMIT = True
    a, _ = await open_copilot(token)
    for _ in range(6):
        assert (await query_outcome(a))["type"] == "query.accepted"
    b, greeting = await open_copilot(token)
    assert greeting["payload"]["rate_limit"]["remaining"] == 4
    for expected in (3, 2, 1, 0):
        assert (await query_outcome(b))["payload"]["remaining"] == expected
    assert (await query_outcome(a))["payload"]["code"] == "RATE_LIMITED"
    assert (await query_outcome(b))["payload"]["code"] == "RATE_LIMITED"
    await a.disconnect()
    await b.disconnect()


async def test_per_connection_limit_when_not_shared(token, settings, fake_clock):
    settings.SHARE_RATE_LIMIT = False
    a, _ = await open_copilot(token)
    b, _ = await open_copilot(token)
    for comm in (a, b):
        for _ in range(10):
            assert (await query_outcome(comm))["type"] == "query.accepted"
    for comm in (a, b):
        assert (await query_outcome(comm))["payload"]["code"] == "RATE_LIMITED"
    await a.disconnect()
    await b.disconnect()


async def test_a_burst_of_1000_queries(token, settings):
    comm, _ = await open_copilot(token)
    started = time.monotonic()
    for i in range(1000):
        await send(comm, "query", {"text": f"q{i}"}, request_id=f"b-{i}")
    accepted, limited = [], []
    while len(accepted) + len(limited) < 1000:
        frame = await recv(comm, timeout=5)
        if frame["type"] == "query.accepted":
            accepted.append(frame)
        elif frame["type"] == "error":
            assert frame["payload"]["code"] == "RATE_LIMITED"
            assert 0 < frame["payload"]["retry_after"] <= 60
            limited.append(frame)
        assert len(runs.RUNNING) <= 10  # at most the allowed queries are tasks
    assert len(accepted) == 10 and len(limited) == 990
    assert [f["request_id"] for f in accepted] == [f"b-{i}" for i in range(10)]
    assert time.monotonic() - started < 15
    await send(comm, "ping", {"alive": True})
    pong = await recv_type(comm, "pong", skip=("ping", "response"))
    assert pong["payload"] == {"alive": True}
    await comm.disconnect()


async def test_queries_in_flight_per_connection_are_capped(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.SleepyAgent"
    settings.COPILOT_MAX_IN_FLIGHT = 2
    comm, _ = await open_copilot(token)
    for _ in range(2):
        assert (await query_outcome(comm))["type"] == "query.accepted"
    capped = await query_outcome(comm)
    assert capped["payload"]["code"] == "RATE_LIMITED"
    assert "already running" in capped["payload"]["message"]
    assert capped["payload"]["retry_after"] == 1.0
    await comm.disconnect()
