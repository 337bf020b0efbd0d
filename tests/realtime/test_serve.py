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
from tests.e2e.server import start_uvicorn

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
    server, serving, port = await start_uvicorn(application, log_level="error")
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


def test_the_command_starts_the_chosen_server(monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    import realtime.management.commands.serve as serve

    started: list[tuple[str, dict]] = []

    class FakeServer:
        def run(self) -> None:
            started.append(("uvicorn-run", {}))

    def fake_uvicorn(application, **options):
        started.append(("uvicorn", options))
        return FakeServer()

    def fake_daphne(application, **options):
        started.append(("daphne", options))

    monkeypatch.setattr(serve, "uvicorn_server", fake_uvicorn)
    monkeypatch.setattr(serve, "run_daphne", fake_daphne)
    out = StringIO()
    call_command("serve", "--port", "9", "--proxy-headers", stdout=out)
    call_command(
        "serve",
        "--server",
        "uvicorn",
        "--no-compression",
        "--no-access-log",
        stdout=out,
    )
    (daphne, daphne_options), (uvicorn, uvicorn_options), (ran, _) = started
    assert (daphne, uvicorn, ran) == ("daphne", "uvicorn", "uvicorn-run")
    assert daphne_options["port"] == 9
    assert daphne_options["backlog"] == uvicorn_options["backlog"] == serve.BACKLOG
    assert daphne_options["proxy_forwarded_proto_header"] == "X-Forwarded-Proto"
    assert daphne_options["action_logger"] is not None
    assert uvicorn_options["ws_per_message_deflate"] is False
    assert uvicorn_options["access_log"] is False
    assert "drain on SIGTERM" in out.getvalue()
    live.set_server("asgi")


def test_daphne_listens_with_the_backlog(monkeypatch):
    import daphne.server

    from realtime.management.commands.serve import run_daphne

    made: list[dict] = []

    class FakeServer:
        def __init__(self, **options) -> None:
            made.append(options)

        def run(self) -> None:
            pass

    monkeypatch.setattr(daphne.server, "Server", FakeServer)
    run_daphne(object(), host="127.0.0.1", port=9, backlog=300)
    (options,) = made
    # Twisted's own default (50) unless the endpoint names one.
    assert options["endpoints"] == ["tcp:port=9:interface=127.0.0.1:backlog=300"]
    assert options["signal_handlers"] is False
    # The protocol's heartbeat is every socket's keepalive: daphne's own never pings.
    assert options["ping_interval"] >= 10**9


def test_uvicorn_sends_no_keepalive_pings_of_its_own():
    server = uvicorn_server(object(), host="127.0.0.1", port=9)
    assert server.config.ws_ping_interval is None
    assert server.config.ws_ping_timeout is None
