"""realtime.entry: the project's ASGI application lets each socket in through one frame.

The origin, the credential and the routes themselves are tested through it elsewhere
(test_consumer.py, test_auth.py, the endpoints' tests); here what the entry adds.
"""

from __future__ import annotations

import asyncio
import functools

import pytest
from channels.routing import URLRouter
from channels.testing import ApplicationCommunicator, WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.urls import include, path, re_path

from realtime import entry as entry_module
from realtime.consumers import NotFoundConsumer
from realtime.echo import EchoConsumer
from realtime.entry import Entry
from tests.conftest import ORIGIN, communicator, recv_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


async def _http_never_called(scope, receive, send):  # pragma: no cover - must not run
    raise AssertionError("a socket reached the HTTP application")


def _entry(routes, **options) -> Entry:
    return Entry(http=_http_never_called, websocket_routes=routes, **options)


def _awaited_chain(task: asyncio.Task) -> list[str]:
    """The coroutines a task is suspended in, outermost first."""
    names = []
    coro = task.get_coro()
    while coro is not None and hasattr(coro, "cr_code"):
        names.append(coro.cr_code.co_qualname)
        coro = coro.cr_await
    return names


async def test_a_socket_s_consumer_is_awaited_by_the_entry_itself(token):
    """No layer between the server's call and the consumer keeps a frame for the
    socket's life: the entry awaits the consumer's loop directly."""
    comm = communicator("/ws/echo/", token=token)
    connected, _ = await comm.connect()
    assert connected
    await recv_type(comm, "echo.ready")
    chain = _awaited_chain(comm.future)
    assert chain[:2] == ["Entry.__call__", "EnvelopeConsumer.__call__"], chain
    await comm.disconnect()


async def test_url_route_kwargs_and_defaults_reach_the_consumer():
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)
        await send({"type": "websocket.close"})

    entry = _entry([path("ws/<str:code>/", app, {"extra": 1})])
    comm = WebsocketCommunicator(entry, "/ws/ab12/", headers=[ORIGIN])
    connected, _ = await comm.connect()
    assert not connected
    assert seen["url_route"] == {"args": (), "kwargs": {"code": "ab12", "extra": 1}}
    assert seen["path_remaining"] == ""
    assert seen["auth"].status == "missing" and not seen["user"].is_authenticated


async def test_the_root_path_is_taken_off_before_routing():
    entry = _entry([path("ws/echo/", EchoConsumer.as_asgi())])
    comm = WebsocketCommunicator(entry, "/app/ws/echo/", headers=[ORIGIN])
    comm.scope["root_path"] = "/app"
    connected, _ = await comm.connect()
    assert connected  # routed: accepted, then closed 4008 (no credential)
    assert (await comm.receive_output(3)) == {"type": "websocket.close", "code": 4008}

    elsewhere = WebsocketCommunicator(entry, "/ws/echo/", headers=[ORIGIN])
    elsewhere.scope["root_path"] = "/app"
    with pytest.raises(ValueError, match="No route found"):
        await elsewhere.connect()


async def test_a_path_no_route_matches_is_an_error_and_the_catch_all_closes_4004():
    entry = _entry([path("ws/echo/", EchoConsumer.as_asgi())])
    with pytest.raises(ValueError, match="No route found"):
        await WebsocketCommunicator(entry, "/ws/nowhere/", headers=[ORIGIN]).connect()

    caught = _entry([re_path(r"", NotFoundConsumer.as_asgi())])
    comm = WebsocketCommunicator(caught, "/ws/nowhere/", headers=[ORIGIN])
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_output(3)) == {"type": "websocket.close", "code": 4004}


async def test_a_cross_site_origin_is_refused_before_routing():
    entry = _entry([])  # no route at all: the origin is refused first
    comm = WebsocketCommunicator(entry, "/ws/x/", headers=[(b"origin", b"null")])
    connected, code = await comm.connect()
    assert not connected and code == 1000  # Channels' denier: a bare 403


async def test_a_path_that_checks_its_own_credential_gets_it_unchecked():
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)
        await send({"type": "websocket.close"})

    entry = _entry([path("ws/own/", app)], own_credential_paths=[r"^/ws/own/$"])
    comm = WebsocketCommunicator(entry, "/ws/own/?token=abc", headers=[ORIGIN])
    await comm.connect()
    assert seen["credential"] == ("token", "abc")
    assert seen["auth"].status == "missing"


async def test_http_goes_to_the_http_application_and_lifespan_is_refused():
    calls = []

    async def http(scope, receive, send):
        calls.append(scope["path"])

    entry = Entry(http=http, websocket_routes=[])
    await entry({"type": "http", "path": "/healthz"}, None, None)
    assert calls == ["/healthz"]
    lifespan = ApplicationCommunicator(entry, {"type": "lifespan"})
    with pytest.raises(ValueError, match="lifespan"):
        await lifespan.wait(1)


async def test_a_wrapped_consumer_app_is_called_not_bypassed():
    calls = []
    inner = EchoConsumer.as_asgi()

    @functools.wraps(inner)  # copies consumer_class onto the wrapper
    async def wrapped(scope, receive, send):
        calls.append(scope["path"])
        return await inner(scope, receive, send)

    comm = WebsocketCommunicator(
        _entry([path("ws/echo/", wrapped)]), "/ws/echo/", headers=[ORIGIN]
    )
    connected, _ = await comm.connect()
    assert connected and calls == ["/ws/echo/"]
    await comm.disconnect()


def test_nested_routes_are_refused_when_the_entry_is_made():
    nested = URLRouter([path("echo/", EchoConsumer.as_asgi())])
    with pytest.raises(ImproperlyConfigured, match="flat list"):
        _entry([path("ws/", nested)])
    with pytest.raises(ImproperlyConfigured, match="flat list"):
        _entry([path("ws/", include([path("echo/", EchoConsumer.as_asgi())]))])


async def test_the_last_origin_header_counts(token):
    entry = _entry([path("ws/echo/", EchoConsumer.as_asgi())])
    evil_last = [(b"origin", b"http://localhost:8000"), (b"origin", b"null")]
    comm = WebsocketCommunicator(entry, f"/ws/echo/?token={token}", headers=evil_last)
    connected, _ = await comm.connect()
    assert not connected
    good_last = list(reversed(evil_last))
    comm = WebsocketCommunicator(entry, f"/ws/echo/?token={token}", headers=good_last)
    connected, _ = await comm.connect()
    assert connected
    await comm.disconnect()


async def test_a_path_is_routed_before_its_credential_is_read(monkeypatch):
    async def no_credential_read(*args):  # pragma: no cover - must not run
        raise AssertionError("the credential was read for a path with no route")

    monkeypatch.setattr(entry_module, "socket_identity", no_credential_read)
    entry = _entry([path("ws/echo/", EchoConsumer.as_asgi())])
    with pytest.raises(ValueError, match="No route found"):
        await WebsocketCommunicator(entry, "/ws/else/", headers=[ORIGIN]).connect()
