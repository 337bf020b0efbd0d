"""How a consumer writes broadcasts when its server lets it write frames directly
(uvicorn: realtime/direct.py), with the server's socket replaced by a recording fake:
prepared writes in order, a client that is behind queued without holding up the hub,
one too far behind closed 4012 and cut off. The real thing:
tests/e2e/test_uvicorn_e2e.py.
"""

from __future__ import annotations

import asyncio

import pytest
from autobahn.exception import Disconnected

from realtime.auth import MISSING
from realtime.broadcast import FANOUT_EVENT
from realtime.direct import text_frame
from realtime.echo import EchoConsumer
from realtime.heartbeat import Heartbeat
from realtime.hub import Hub


class FakeWriter:
    """Stands in for realtime.direct.SocketWriter (uvicorn's connection)."""

    sends_wait = True

    def __init__(self) -> None:
        self.prepared_ok = True
        self.behind = False  # uvicorn's writable event cleared
        self.shut = False  # close sent or transport closing
        self.frames: list[bytes] = []
        self.aborted = False

    def paused(self) -> bool:
        return self.behind

    def closed(self) -> bool:
        return self.shut

    def write(self, frame: bytes) -> bool:
        if not self.prepared_ok or self.behind or self.shut:
            return False
        self.frames.append(frame)
        return True

    def abort(self) -> None:
        self.aborted = True


class Socket:
    """The ASGI send of the consumer: records messages; ``gate`` can hold them."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, message: dict) -> None:
        await self.gate.wait()
        self.sent.append(message)


def consumer(writer: FakeWriter, socket: Socket, name: str = "c") -> EchoConsumer:
    c = EchoConsumer()
    c.scope = {"type": "websocket", "auth": MISSING, "path": "/ws/echo/"}
    c.base_send = socket
    c.channel_name = name
    c._init_state()
    c.outbox.held = None  # connected
    c.outbox.writer = writer
    return c


def fanout(text: str, **extra) -> dict:
    return {"type": FANOUT_EVENT, "text": text, **extra}


def texts(socket: Socket) -> list[str]:
    return [m["text"] for m in socket.sent if m["type"] == "websocket.send"]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_broadcasts_are_written_prepared_without_awaiting():
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    assert c.outbox.deliver_now(fanout("one")) is True
    assert c.outbox.deliver_now(fanout("two", exclude="c")) is True  # excluded: nothing
    assert writer.frames == [text_frame("one")] and socket.sent == []


async def test_the_hub_falls_back_when_the_writer_declines():
    writer, socket = FakeWriter(), Socket()
    writer.prepared_ok = False  # permessage-deflate negotiated
    c = consumer(writer, socket)
    hub = Hub()
    await hub.join("g", c.outbox)
    await hub.publish("g", fanout("x"))
    assert texts(socket) == ["x"] and writer.frames == []


async def test_a_client_behind_is_queued_in_order_and_the_hub_goes_on():
    writer, slow_socket, other_socket = FakeWriter(), Socket(), Socket()
    slow = consumer(writer, slow_socket, "slow")
    other = consumer(FakeWriter(), other_socket, "other")
    hub = Hub()
    await hub.join("g", slow.outbox)
    await hub.join("g", other.outbox)
    writer.behind = True
    slow_socket.gate.clear()  # uvicorn's send would wait
    for i in range(3):
        await asyncio.wait_for(hub.publish("g", fanout(f"m{i}")), 1)  # never blocks
    assert len(other.outbox.writer.frames) == 3  # the others got everything at once
    assert (
        slow.outbox.queue is not None and slow.outbox.deliver_now(fanout("m3")) is False
    )
    await hub.publish("g", fanout("m3"))  # joins the queue, behind the others
    writer.behind = False
    slow_socket.gate.set()  # the client reads again
    await settle()
    # m0 was already in uvicorn's send; once it went, the rest could be prepared.
    assert texts(slow_socket) == ["m0"] and slow.outbox.queue is None
    assert writer.frames == [text_frame(f"m{i}") for i in (1, 2, 3)]
    await hub.publish("g", fanout("m4"))  # caught up: straight from the hub again
    assert writer.frames[-1] == text_frame("m4") and len(writer.frames) == 4


async def test_too_far_behind_is_closed_4012_and_cut_off_if_it_takes_nothing(
    settings,
):
    settings.REALTIME_CLOSE_WAIT = 0.05
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    settings.REALTIME_MAX_QUEUED_BYTES = 1000
    writer.behind = True
    socket.gate.clear()  # not even the close frame gets through
    await c.outbox.hub_deliver(fanout("x" * 600))
    assert not c.closing
    await c.outbox.hub_deliver(fanout("y" * 600))  # 1,200 bytes waiting: past the bound
    assert c.closing and not c.outbox.queue
    await c.outbox.hub_deliver(fanout("z"))  # dropped
    await asyncio.sleep(0.2)
    assert writer.aborted  # the close frame waited in vain
    socket.gate.set()
    await settle()
    assert texts(socket) == []


async def test_a_socket_the_server_closed_is_not_written_to():
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    writer.shut = True
    await c.send_text("late")
    assert c.closing and socket.sent == []


async def test_a_close_that_gets_through_still_cuts_a_client_that_never_answers(
    settings,
):
    settings.REALTIME_CLOSE_WAIT = 0.05
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    await c.close_with(4010)
    assert socket.sent == [{"type": "websocket.close", "code": 4010}]
    await asyncio.sleep(0.2)
    assert writer.aborted  # FakeWriter.abort stands for "abort if still open"


@pytest.mark.parametrize("answer", [True, False])
async def test_heartbeat_without_a_consumer_keeps_its_own_tasks(answer, caplog):
    pings: list[str] = []
    dead, three_pings = asyncio.Event(), asyncio.Event()

    async def send_ping(nonce: str) -> None:
        pings.append(nonce)
        if len(pings) == 3:
            three_pings.set()
        if answer:
            beat.pong(nonce)

    async def on_dead() -> None:
        dead.set()

    def on_beat() -> None:
        raise RuntimeError("redis blip")  # logged, the heartbeat goes on

    tasks: set[asyncio.Task] = set()  # the connection's, as EnvelopeConsumer.spawn

    def spawn(coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    beat = Heartbeat(
        send_ping=send_ping,
        on_dead=on_dead,
        on_beat=on_beat,
        interval=0.01,
        timeout=0.02,
        max_missed=2,
        spawn=spawn,
    )
    beat.start()
    try:
        if answer:
            await asyncio.wait_for(three_pings.wait(), 2)
            assert not dead.is_set() and "heartbeat refresh failed" in caplog.text
        else:
            await asyncio.wait_for(dead.wait(), 2)
            assert len(pings) == 2
    finally:
        beat.stop()


async def test_an_ordered_stream_skips_the_fast_path_only_out_of_turn():
    """Frames broadcast with a seq to a stream the socket orders go out in seq order,
    once: the next one straight from the hub, one ahead of its turn held until the
    gap closes, an old one dropped; frames of other streams as they come."""
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    c.order_stream("room", last=4, gap_wait=10.0)

    def stored(seq: int) -> dict:
        return fanout(f"m{seq}", seq=seq, stream="room")

    assert c.outbox.deliver_now(stored(5)) is True
    assert c.outbox.deliver_now(stored(7)) is False  # 6 is missing
    await c.outbox.hub_deliver(stored(7))
    assert c.outbox.deliver_now(stored(6)) is False  # 7 is held: not the fast path
    await c.outbox.hub_deliver(stored(6))
    await c.outbox.hub_deliver(stored(6))  # a duplicate: dropped
    assert c.outbox.deliver_now(fanout("typing")) is True  # no seq: as it comes
    assert c.outbox.deliver_now(fanout("other", seq=1, stream="elsewhere")) is True
    assert writer.frames == [
        text_frame(text) for text in ("m5", "m6", "m7", "typing", "other")
    ]
    assert c.outbox.last_seq("room") == 7 and socket.sent == []
    if c.outbox.gap_timer is not None:
        c.outbox.gap_timer.cancel()


async def test_a_hole_is_read_back_through_the_endpoint_after_its_wait():
    """A seq that never arrives is asked of ``fill_gap`` once ``gap_wait`` passed;
    what storage has goes out in order before anything offered later, and what it
    lacks is skipped."""
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    asked = []

    async def fill(stream: str, after: int, upto: int):
        asked.append((stream, after, upto))
        return [(2, "m2")]  # 3 was rolled back: storage does not have it

    c.outbox.fill = fill
    c.order_stream("room", last=1, gap_wait=0.01)
    await c.outbox.hub_deliver(fanout("m4", seq=4, stream="room"))
    assert writer.frames == []
    for _ in range(100):
        if c.outbox.last_seq("room") == 4:
            break
        await asyncio.sleep(0.01)
    await settle()
    assert asked == [("room", 1, 4)]
    assert writer.frames == [text_frame("m2"), text_frame("m4")]
    await c.outbox.hub_deliver(fanout("m5", seq=5, stream="room"))
    assert writer.frames[-1] == text_frame("m5")


async def test_a_task_cancelled_before_it_ran_leaves_no_unawaited_coroutine(recwarn):
    """A socket that closes at once cancels what it spawned before it started: its
    coroutine is closed, not left for Python to warn about."""
    import gc

    c = consumer(FakeWriter(), Socket())
    ran = []

    async def work() -> None:
        ran.append(True)

    c.spawn(work()).cancel()
    await asyncio.sleep(0)  # the cancellation runs; the socket forgets the task
    await asyncio.sleep(0)
    assert not c.tasks
    gc.collect()
    assert ran == []
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


async def test_replies_are_framed_here_unless_something_could_be_overtaken():
    """A reply goes straight to the transport when the socket is idle; while an
    ordinary send is in progress or broadcasts are queued, it takes ASGI's send behind
    them, in order."""
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    await c.send_text("direct")
    assert writer.frames == [text_frame("direct")] and socket.sent == []

    writer.behind = True  # the client is behind: a broadcast is queued, and its
    socket.gate.clear()  # send waits for the client to read
    await c.outbox.hub_deliver(fanout("queued"))
    await settle()
    writer.behind = False  # the transport has room again, the queue is still sending
    reply = asyncio.ensure_future(c.send_text("after"))
    await settle()
    assert writer.frames == [text_frame("direct")]  # not written past the queue
    socket.gate.set()
    await reply
    await settle()
    assert texts(socket) == ["queued", "after"]


@pytest.mark.parametrize(
    "gone",
    [ConnectionResetError("uvicorn: ClientDisconnected"), Disconnected("daphne")],
    ids=["uvicorn", "daphne"],
)
async def test_a_client_gone_mid_broadcast_is_dropped_quietly(gone, caplog):
    """Each server has its own exception for a send after the client left; the hub
    must neither log a traceback per receiver nor stop the fan-out."""

    class GoneSocket(Socket):
        async def __call__(self, message: dict) -> None:
            raise gone

    gone_one = consumer(FakeWriter(), GoneSocket(), "gone")
    gone_one.outbox.writer = None  # daphne: every frame through ASGI's send
    writer, socket = FakeWriter(), Socket()
    other = consumer(writer, socket, "other")
    hub = Hub()
    await hub.join("g", gone_one.outbox)
    await hub.join("g", other.outbox)
    with caplog.at_level("ERROR"):
        await hub.publish("g", fanout("x"))
        await hub.publish("g", fanout("y"))
    assert gone_one.closing is True
    assert writer.frames == [text_frame("x"), text_frame("y")]
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


async def test_on_daphne_a_client_far_behind_is_queued_then_drained_or_cut(settings):
    """daphne's sends never wait: the outbox hands a paused client nothing more,
    queues its broadcasts in order, drains them once Twisted has room, and past
    REALTIME_MAX_QUEUED_BYTES closes it 4012 as on uvicorn."""
    writer, socket = FakeWriter(), Socket()
    writer.sends_wait = False  # daphne
    c = consumer(writer, socket)
    writer.behind = True
    for text in ("a", "b"):
        assert c.outbox.deliver_now(fanout(text)) is False
        await c.outbox.hub_deliver(fanout(text))
    await asyncio.sleep(0.12)  # the drain looks, sees it still behind, waits
    assert writer.frames == [] and socket.sent == [] and c.outbox.queue
    writer.behind = False
    for _ in range(50):
        if c.outbox.queue is None:
            break
        await asyncio.sleep(0.02)
    assert writer.frames == [text_frame("a"), text_frame("b")]
    settings.REALTIME_MAX_QUEUED_BYTES = 1000
    writer.behind = True
    await c.outbox.hub_deliver(fanout("x" * 600))
    await c.outbox.hub_deliver(fanout("y" * 600))
    assert c.closing and not c.outbox.queue


async def test_overlapping_holes_are_read_one_at_a_time_and_written_in_order():
    """A second hole appears while the first is being read: it waits for that read,
    and what each read releases is written in seq order, never one read's frames
    ahead of the other's (review: two fills once wrote 7, 9, 10, 8)."""
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    reads: list[tuple[int, int]] = []
    first_read = asyncio.Event()
    stored = {7: "m7", 9: "m9"}  # 6 was rolled back; 8 and 10 come as broadcasts

    async def fill(stream: str, after: int, upto: int):
        reads.append((after, upto))
        if len(reads) == 1:
            await first_read.wait()  # slow storage: the second hole forms meanwhile
        return [(seq, text) for seq, text in stored.items() if after < seq <= upto]

    c.outbox.fill = fill
    c.order_stream("room", last=5, gap_wait=0.01)
    await c.outbox.hub_deliver(fanout("m8", seq=8, stream="room"))
    await asyncio.sleep(0.05)  # the first read (5, 8] is under way
    await c.outbox.hub_deliver(fanout("m10", seq=10, stream="room"))
    await asyncio.sleep(0.05)
    assert reads == [(5, 8)]  # no second read while the first one runs
    first_read.set()
    for _ in range(100):
        if c.outbox.last_seq("room") == 10:
            break
        await asyncio.sleep(0.01)
    await settle()
    assert writer.frames == [text_frame(t) for t in ("m7", "m8", "m9", "m10")]


async def test_a_failed_read_is_tried_again_a_wait_later(caplog):
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    calls = []

    async def fill(stream: str, after: int, upto: int):
        calls.append(after)
        if len(calls) == 1:
            raise ConnectionError("database down for a moment")
        return [(2, "m2")]

    c.outbox.fill = fill
    c.order_stream("room", last=1, gap_wait=0.02)
    await c.outbox.hub_deliver(fanout("m3", seq=3, stream="room"))
    for _ in range(100):
        if c.outbox.last_seq("room") == 3:
            break
        await asyncio.sleep(0.01)
    await settle()
    assert calls == [1, 1] and "reading seq 1..3 failed" in caplog.text
    assert writer.frames == [text_frame("m2"), text_frame("m3")]
    assert socket.sent == []  # no error frame for the client: not its doing


async def test_a_broadcast_queued_for_a_group_the_socket_left_is_not_written():
    """A member removed while its client is behind: what waited in its queue for
    that conversation's group is dropped, not written (authorisation at delivery)."""
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    c.groups_joined.update({"conversation.x", "inbox.1"})
    writer.behind = True
    for group, text in (("conversation.x", "secret"), ("inbox.1", "notice")):
        await c.outbox.hub_deliver({**fanout(text), "group": group})
    c.groups_joined.discard("conversation.x")  # removed
    writer.behind = False
    for _ in range(50):
        if c.outbox.queue is None:
            break
        await asyncio.sleep(0.01)
    assert writer.frames == [text_frame("notice")]


async def test_a_held_event_that_fails_does_not_stop_the_others(caplog):
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    c.outbox.held = []

    async def on_event(event: dict) -> None:
        raise RuntimeError("a handler bug")

    c.outbox.on_event = on_event
    c.outbox.held.extend([{"type": "x.y"}, fanout("after")])
    await c.outbox.release_held()
    assert writer.frames == [text_frame("after")] and c.outbox.held is None
    assert "held event failed" in caplog.text


async def test_a_heartbeat_ping_is_written_at_once_unless_it_must_wait():
    """The heartbeat's ping (``send_frame_now``): on the socket at once when nothing
    could be overtaken (no task); a coroutine for the ordinary send otherwise;
    nothing at all once the socket is closing."""
    writer, socket = FakeWriter(), Socket()
    c = consumer(writer, socket)
    assert c.send_frame_now("ping", {"nonce": "n1"}) is None
    assert len(writer.frames) == 1 and b'"nonce":"n1"' in writer.frames[0]
    writer.prepared_ok = False  # the server does not take prepared frames now
    sending = c.send_frame_now("ping", {"nonce": "n2"})
    assert sending is not None and len(writer.frames) == 1
    await sending
    assert '"nonce":"n2"' in texts(socket)[0]
    c.outbox.closing = True
    assert c.send_frame_now("ping", {"nonce": "n3"}) is None
    assert len(writer.frames) == 1 and len(socket.sent) == 1
