"""``manage.py serve``'s uvicorn server, in this process: SIGTERM drains, exit is 0."""

from __future__ import annotations

import asyncio
import signal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime import live
from realtime.connection import connections
from realtime.management.commands.serve import uvicorn_server
from tests.e2e.server import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def _serving():
    connections.draining = False
    yield
    connections.draining = False


async def test_sigterm_closes_4012_then_stops_without_raising_the_signal(
    token, settings
):
    from config.asgi import application

    settings.DRAIN_WINDOW, settings.DRAIN_DEADLINE = 0.3, 3
    port = free_port()
    server = uvicorn_server(application, host="127.0.0.1", port=port, log_level="error")
    serving = asyncio.ensure_future(server.serve())
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    url = f"ws://127.0.0.1:{port}/ws/echo/?token={token}"
    headers = {"Origin": "http://localhost:8000"}
    async with connect(url, additional_headers=headers) as ws:
        await ws.recv()  # echo.ready
        assert live.process_id() in live.get_store().members(live.PROCESSES)
        server.handle_exit(signal.SIGTERM, None)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4012
    await asyncio.wait_for(serving, 10)
    assert server.should_exit
    # uvicorn raises a recorded signal again after its shutdown: none is recorded.
    assert server._captured_signals == []
    assert live.process_id() not in live.get_store().members(live.PROCESSES)
