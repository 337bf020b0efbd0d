"""Long-lived sockets stay in their groups on the channel layer's path.

channels-redis forgets a group member ``group_expiry`` seconds after it was added;
a socket re-joins its groups on the heartbeat every ``REALTIME_GROUP_REFRESH``
seconds, so a socket older than the expiry still gets what is sent to its groups.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.layers import get_channel_layer

from realtime.broadcast import FANOUT_EVENT
from realtime.groups import user_group
from tests.conftest import communicator, recv, send
from tests.services import redis_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture
def redis_layer(settings):
    settings.REALTIME_FANOUT = "layer"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [redis_url()],
                "group_expiry": 2,
                "prefix": f"expiry-test-{time.monotonic_ns()}",
            },
        }
    }
    settings.HEARTBEAT_INTERVAL, settings.PONG_TIMEOUT = 0.25, 1.0


async def _alive_for(comm, seconds: float) -> None:
    """Answer the heartbeat for ``seconds`` (the client of a long-lived socket)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await comm.receive_nothing(0.1):
            continue
        frame = await recv(comm)
        if frame["type"] == "ping":
            await send(comm, "pong", {"nonce": frame["payload"]["nonce"]})


async def _reached(comm, user_pk: int) -> bool:
    text = json.dumps({"type": "probe", "payload": {}})
    await get_channel_layer().group_send(
        user_group(user_pk), {"type": FANOUT_EVENT, "text": text}
    )
    while not await comm.receive_nothing(0.5):
        if (await recv(comm))["type"] == "probe":
            return True
    return False


@pytest.mark.parametrize(("refresh", "kept"), [(1.0, True), (60.0, False)])
async def test_a_socket_older_than_the_group_expiry_keeps_its_groups(
    redis_layer, settings, token, user, refresh, kept
):
    settings.REALTIME_GROUP_REFRESH = refresh
    comm = communicator("/ws/echo/", token=token)
    assert (await comm.connect(timeout=5))[0]
    assert (await recv(comm))["type"] == "echo.ready"
    await _alive_for(comm, 3.5)  # past the 2 s expiry
    assert await _reached(comm, user.pk) is kept  # without re-joins: forgotten
    await comm.disconnect()
