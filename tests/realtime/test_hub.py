"""The fan-out hub delivers exactly what the channel-layer path did, faster."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from realtime.hub import Hub
from tests.conftest import recv, send
from tests.realtime.toolkit_consumer import application
from tests.services import redis_url

pytestmark = pytest.mark.timeout(30)


async def _scenario(token: str, receivers: int = 5, per_sender: int = 30):
    """Two senders interleave; every socket records the raw texts it receives."""
    comms = []
    for _ in range(receivers):
        comm = WebsocketCommunicator(application, f"/ws/toolkit/?token={token}")
        assert (await comm.connect())[0]
        assert (await recv(comm))["type"] == "hello"
        comms.append(comm)
    a, b = comms[0], comms[1]
    for i in range(per_sender):
        await send(a, "room.say", {"text": f"a{i}"})
        await send(b, "room.say", {"text": f"b{i}"})
    received = []
    for comm in comms:
        texts = [await comm.receive_from(timeout=5) for _ in range(2 * per_sender)]
        assert await comm.receive_nothing(timeout=0.1)
        received.append(texts)
    for comm in comms:
        await comm.disconnect()
    return received


def _payloads(texts: list[str]) -> list[str]:
    return [json.loads(t)["payload"]["text"] for t in texts]


@pytest.mark.django_db(transaction=True)
async def test_hub_delivers_what_the_layer_path_did(token, settings):
    settings.REALTIME_FANOUT = "layer"
    slow = await _scenario(token)
    settings.REALTIME_FANOUT = "hub"
    fast = await _scenario(token)
    for run in (slow, fast):
        first = run[0]
        # Every receiver got the very same bytes, in the same order ...
        assert all(texts == first for texts in run)
        # ... nothing lost, each sender's order kept.
        got = _payloads(first)
        assert [p for p in got if p[0] == "a"] == [f"a{i}" for i in range(30)]
        assert [p for p in got if p[0] == "b"] == [f"b{i}" for i in range(30)]
    # Both paths deliver the same frames (timestamps aside).
    assert sorted(_payloads(slow[0])) == sorted(_payloads(fast[0]))


@pytest.mark.django_db(transaction=True)
async def test_a_greeting_is_never_overtaken_by_the_group(token):
    talker = WebsocketCommunicator(application, f"/ws/toolkit/?token={token}")
    await talker.connect()
    await recv(talker)
    slow = WebsocketCommunicator(application, f"/ws/toolkit/?token={token}&slow=0.3")
    connecting = asyncio.ensure_future(slow.connect())
    await asyncio.sleep(0.1)  # slow has joined the group, its greeting is pending
    await send(talker, "room.say", {"text": "early"})
    await connecting
    assert (await recv(slow))["type"] == "hello"
    assert (await recv(slow))["payload"] == {"text": "early"}
    await slow.disconnect()
    await talker.disconnect()


class Recorder:
    def __init__(self, name: str) -> None:
        self.channel_name = name
        self.events: list[dict] = []
        self.arrived = asyncio.Event()

    def deliver_now(self, event: dict) -> bool:
        return False  # a plain member: always through hub_deliver

    async def hub_deliver(self, event: dict) -> None:
        self.events.append(event)
        self.arrived.set()


async def wait_for(recorder: Recorder, count: int, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while len(recorder.events) < count:
            recorder.arrived.clear()
            await recorder.arrived.wait()


async def test_local_delivery_shares_one_event_and_survives_a_broken_member():
    hub = Hub()

    class Broken(Recorder):
        async def hub_deliver(self, event):
            raise RuntimeError("socket gone")

    one, two = Recorder("one"), Recorder("two")
    await hub.join("g", one)
    await hub.join("g", Broken("bad"))
    await hub.join("g", two)
    event = {"type": "realtime.fanout", "text": "x"}
    await hub.publish("g", event)
    assert one.events[0] is event and two.events[0] is event  # not copied
    await hub.leave("g", one)
    await hub.leave("g", one)
    await hub.leave("nope", one)
    assert len(hub.groups["g"]) == 2
    await hub.publish("empty", event)


async def test_relay_crosses_processes_once_per_process():
    url, prefix = redis_url(), f"t{id(object())}"
    a, b = Hub(url, prefix), Hub(url, prefix)
    try:
        here, there, there2 = Recorder("h"), Recorder("t1"), Recorder("t2")
        await a.join("session.1", here)
        await b.join("session.1", there)
        await b.join("session.1", there2)
        await asyncio.sleep(0.1)  # subscriptions settle
        for i in range(20):
            await a.publish("session.1", {"type": "realtime.fanout", "text": f"m{i}"})
        await wait_for(there, 20)
        await wait_for(there2, 20)
        assert [e["text"] for e in there.events] == [f"m{i}" for i in range(20)]
        assert there.events == there2.events
        await asyncio.sleep(0.2)
        assert len(here.events) == 20  # its own publication is not delivered twice
        await b.leave("session.1", there)
        await b.leave("session.1", there2)
        await a.publish("session.1", {"type": "realtime.fanout", "text": "late"})
        await asyncio.sleep(0.2)
        assert len(there.events) == 20
    finally:
        await a.close()
        await b.close()


async def test_relay_loss_closes_local_sockets_with_4012_then_recovers():
    import redis.asyncio as aioredis

    url, prefix = redis_url(), f"t{id(object())}"
    a, b = Hub(url, prefix), Hub(url, prefix)
    admin = aioredis.Redis.from_url(url)
    try:
        there = Recorder("t")
        await b.join("session.9", there)
        await asyncio.sleep(0.1)
        for client in await admin.client_list():  # only b's subscriber connection
            if client.get("name") == b.relay.client_name and "sub" in client["cmd"]:
                await admin.execute_command("CLIENT", "KILL", "ID", client["id"])
        await wait_for(there, 1)
        assert there.events[0] == {"type": "realtime.close", "code": 4012}
        for _ in range(50):  # after resubscribing, messages flow again
            await a.publish("session.9", {"type": "realtime.fanout", "text": "back"})
            await asyncio.sleep(0.1)
            if any(event.get("text") == "back" for event in there.events):
                break
        assert there.events[-1]["text"] == "back"
        # Back on Redis, sockets that joined while it was away resync too (4012).
        closes = [event for event in there.events if event["type"] == "realtime.close"]
        assert len(closes) == 2
    finally:
        await admin.aclose()
        await a.close()
        await b.close()


async def test_relay_carries_typed_events_with_bytes():
    url, prefix = redis_url(), f"t{id(object())}"
    a, b = Hub(url, prefix), Hub(url, prefix)
    try:
        there = Recorder("t")
        await b.join("stream.cam", there)
        await asyncio.sleep(0.1)
        jpeg = bytes(range(256)) * 200
        await a.publish("stream.cam", {"type": "stream.frame", "seq": 7, "jpeg": jpeg})
        await wait_for(there, 1)
        assert there.events[0] == {"type": "stream.frame", "seq": 7, "jpeg": jpeg}
    finally:
        await a.close()
        await b.close()


@pytest.mark.django_db(transaction=True)
async def test_publish_event_reaches_the_typed_handler_and_refuses_websocket_types(
    token,
):
    from realtime.broadcast import publish_event
    from realtime.groups import session_group

    comm = WebsocketCommunicator(application, f"/ws/toolkit/?token={token}")
    await comm.connect()
    await recv(comm)
    await publish_event(session_group("toolkit"), {"type": "toolkit.poke", "n": 3})
    assert (await recv(comm))["payload"] == {"n": 3}
    with pytest.raises(ValueError):
        await publish_event(session_group("toolkit"), {"type": "websocket.send"})
    await comm.disconnect()


async def test_a_failed_subscribe_leaves_no_deaf_group():
    hub = Hub(redis_url(), f"t{id(object())}")
    try:
        calls = []

        async def broken(group):
            calls.append(group)
            raise ConnectionError("redis busy")

        real = hub.relay.subscribe
        hub.relay.subscribe = broken
        with pytest.raises(ConnectionError):
            await hub.join("session.5", Recorder("a"))
        assert "session.5" not in hub.groups
        hub.relay.subscribe = real
        await hub.join("session.5", Recorder("b"))  # tries again, and works
        assert len(hub.groups["session.5"]) == 1 and calls == ["session.5"]
    finally:
        await hub.close()


async def test_a_malformed_relay_message_does_not_kill_the_listener():
    import redis.asyncio as aioredis

    url, prefix = redis_url(), f"t{id(object())}"
    a, b = Hub(url, prefix), Hub(url, prefix)
    raw = aioredis.Redis.from_url(url)
    try:
        there = Recorder("t")
        await b.join("session.6", there)
        await asyncio.sleep(0.1)
        await raw.publish(f"{prefix}:hub:session.6", b"\xc1 not msgpack")
        await a.publish("session.6", {"type": "realtime.fanout", "text": "after"})
        await wait_for(there, 1)
        assert there.events == [{"type": "realtime.fanout", "text": "after"}]
    finally:
        await raw.aclose()
        await a.close()
        await b.close()


async def test_a_failed_relay_publish_still_reaches_this_process_and_is_raised():
    """A relay that cannot publish (a node down, a slot moving) costs the other
    processes the event, never this process's own sockets; the caller hears why."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    hub = Hub()
    calls = []

    class DownRelay:
        async def publish(self, group, event):
            calls.append(group)
            raise RedisConnectionError("node down")

        async def close(self):
            pass

    here = Recorder("here")
    await hub.join("g", here)  # joined before the relay: nothing to subscribe
    hub.relay = DownRelay()
    event = {"type": "realtime.fanout", "text": "x"}
    with pytest.raises(RedisConnectionError):
        await hub.publish("g", event)
    assert calls == ["g"] and here.events == [event]
