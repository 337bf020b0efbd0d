"""Prepared frames under daphne (realtime/direct.py, DaphneWriter): sent past
autobahn and Twisted's per-frame writer registration, in order, whatever the size,
and behind whatever Twisted still holds for a client that fell behind."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import frame
from tests.e2e.server import DaphneServer
from tests.e2e.test_uvicorn_e2e import broadcast_burst, broadcast_every_length, metric

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "REALTIME_MAX_TEXT_BYTES": str(1_100_000),
        # A client 6 MB behind is kept (queued), as in the uvicorn tests.
        "REALTIME_MAX_QUEUED_BYTES": str(8 * 1024 * 1024),
    }
    with DaphneServer(tmp_path_factory.mktemp("e2e-daphne-direct"), env=env) as srv:
        srv.alice = srv.create_user("alice")
        yield srv


def writes(server, path: str) -> int:
    return metric(server, "realtime_broadcast_writes_total", f'path="{path}"')


async def test_broadcasts_and_replies_are_sent_prepared_on_daphne(server):
    before = {path: writes(server, path) for path in ("prepared", "asgi")}
    url = server.ws_url(f"/ws/echo/?token={server.alice['access']}")
    sockets = [await connect(url, compression=None) for _ in range(2)]
    sockets.append(await connect(url))  # offers permessage-deflate: daphne declines
    try:
        sent = await broadcast_every_length(sockets[0], sockets)
        await sockets[1].send(json.dumps({"type": "ping", "payload": {"n": 1}}))
        assert (await frame(sockets[1]))["type"] == "pong"
        assert writes(server, "prepared") - before["prepared"] == 3 * len(sent)
        assert writes(server, "asgi") == before["asgi"]
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_client_behind_gets_everything_later_in_order_on_daphne(server):
    """Twisted holds what the kernel does not take; later frames go behind it."""
    count = 6  # 6 MB: past the socket buffers
    slow, reader, got = await broadcast_burst(server, count)
    try:
        assert got == list(range(count))  # the reader was never held up
        late = [
            (await frame(slow, timeout=20))["payload"]["payload"]["i"]
            for _ in range(count)
        ]
        assert late == list(range(count))
    finally:
        await slow.close()
        await reader.close()
