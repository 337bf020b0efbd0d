"""The heartbeat wheel (realtime/heartbeat.py): one timer per process, beats due within
a tick sent in one turn of the loop, none late by a tick or more; a stopped heartbeat
leaves nothing behind and one socket's failure does not stop the others'."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref

from realtime import heartbeat as heartbeat_module
from realtime.heartbeat import Deadline, Heartbeat, Wheel, wheel

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def count_fires(monkeypatch, sockets: Sockets) -> list[int]:
    """Number the wheel's firings (``sockets.fire``); returns [firings]."""
    fires = [0]
    fire = Wheel._fire

    def counted(self) -> None:
        fires[0] += 1
        sockets.fire = fires[0]
        fire(self)

    monkeypatch.setattr(Wheel, "_fire", counted)
    return fires


class Sockets:
    """Heartbeats of fake sockets, each ping written at once (no task) and recorded
    with the loop's time."""

    def __init__(self) -> None:
        self.pings: dict[int, list[float]] = {}
        self.spawned = 0
        self.tasks: set[asyncio.Task] = set()
        self.pinged = asyncio.Event()
        self.fire = 0  # the wheel's firings so far (count_fires)
        self.fired: dict[int, int] = {}  # socket → the firing that sent its ping
        self.dead: list[int] = []

    async def until(self, condition) -> None:
        """Wait for ``condition`` over the pings so far, woken by each ping."""
        while not condition():
            self.pinged.clear()
            await self.pinged.wait()

    def spawn(self, coro) -> asyncio.Task:
        self.spawned += 1
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def heartbeat(
        self, n: int, *, interval=0.2, timeout=1.0, tick=0.1, ping=None, max_missed=3
    ):
        self.pings[n] = []

        def send_ping(nonce: str) -> None:
            self.pings[n].append(asyncio.get_running_loop().time())
            self.fired.setdefault(n, self.fire)
            self.pinged.set()

        async def on_dead() -> None:
            self.dead.append(n)
            self.pinged.set()

        return Heartbeat(
            send_ping=ping or send_ping,
            on_dead=on_dead,
            interval=interval,
            timeout=timeout,
            max_missed=max_missed,
            spawn=self.spawn,
            tick=tick,
        )


async def test_beats_due_within_a_tick_go_out_together_and_never_a_tick_late(
    monkeypatch,
):
    sockets = Sockets()
    fires = count_fires(monkeypatch, sockets)
    loop = asyncio.get_running_loop()
    started: dict[int, float] = {}
    beats = []
    for n in range(20):  # started ~2 ms apart: over one tick or two
        beat = sockets.heartbeat(n)
        started[n] = loop.time()
        beat.start()
        beats.append(beat)
        await asyncio.sleep(0.002)
    # Twenty heartbeats wait in as many buckets as the ticks they were started over
    # (and one), each bucket one turn of the loop.
    ticks = int((loop.time() - started[0]) / 0.1) + 2
    assert 1 <= len(wheel().buckets) <= ticks < 20
    await asyncio.wait_for(sockets.until(lambda: all(sockets.pings.values())), 2)
    for beat in beats:
        beat.stop()
    assert 1 <= len(set(sockets.fired.values())) <= ticks  # one turn per tick
    assert fires[0] <= ticks + 1
    for n, pings in sockets.pings.items():
        late = pings[0] - (started[n] + 0.2)
        assert -0.01 <= late < 0.1 + 0.05  # a tick, and the loop's own slack
    assert sockets.spawned == 0  # written at once: no task per ping


async def test_a_stopped_heartbeat_leaves_the_wheel_and_never_pings():
    sockets = Sockets()
    kept, stopped = sockets.heartbeat(1), sockets.heartbeat(2)
    kept.start()
    stopped.start()
    assert len(wheel()) == 2
    stopped.stop()
    assert len(wheel()) == 1
    await asyncio.wait_for(sockets.until(lambda: sockets.pings[1]), 2)
    kept.stop()
    assert len(wheel()) == 0 and sockets.pings[2] == []


async def test_one_failing_ping_does_not_stop_the_others(caplog):
    sockets = Sockets()

    def broken(nonce: str) -> None:
        raise RuntimeError("socket gone wrong")

    bad = sockets.heartbeat(1, ping=broken)
    good = sockets.heartbeat(2)
    bad.start()
    good.start()
    await asyncio.wait_for(sockets.until(lambda: len(sockets.pings[2]) >= 2), 2)
    good.stop()
    bad.stop()
    assert "heartbeat failed" in caplog.text


async def test_a_ping_that_must_wait_gets_a_task_of_the_connection():
    sockets = Sockets()
    sent = asyncio.Event()

    async def slow_send(nonce: str) -> None:
        await asyncio.sleep(0)
        sent.set()

    beat = sockets.heartbeat(1, ping=lambda nonce: slow_send(nonce))
    beat.start()
    await asyncio.wait_for(sent.wait(), 2)
    beat.stop()
    assert sockets.spawned >= 1


async def test_short_intervals_get_a_finer_tick_and_an_early_fire_is_not_lost():
    sockets = Sockets()
    beat = sockets.heartbeat(1, interval=0.04, timeout=0.08, tick=1.0)
    assert beat.tick == 0.01  # a quarter of the interval, not the knob's second
    beat.start()
    w = wheel()
    # asyncio may fire a timer up to its clock resolution early: the armed bucket
    # is due even if the clock reads a hair before it.
    w.armed_at = max(w.buckets)
    w._fire()
    assert len(sockets.pings[1]) == 1
    beat.stop()


def test_each_event_loop_has_its_own_wheel():
    async def get() -> Wheel:
        return wheel()

    assert asyncio.run(get()) is not asyncio.run(get())


async def test_unanswered_pings_end_in_on_dead_and_leave_the_wheel_empty():
    sockets = Sockets()
    beat = sockets.heartbeat(1, interval=0.04, timeout=0.04, max_missed=2)
    beat.start()
    await asyncio.wait_for(sockets.until(lambda: sockets.dead), 2)
    assert len(sockets.pings[1]) == 2 and len(wheel()) == 0
    assert wheel().timer is None  # nothing left to fire for


async def test_each_beat_runs_in_its_connections_context():
    """One timer for every socket, and still each socket's own log fields."""
    sockets = Sockets()
    seen: dict[int, str] = {}
    beats = []
    for n, who in ((1, "alice"), (2, "bob")):

        def ping(nonce: str, n=n) -> None:
            seen[n] = WHO.get()
            sockets.pings[n].append(0.0)
            sockets.pinged.set()

        WHO.set(who)  # the connection's context when its heartbeat starts
        beat = sockets.heartbeat(n, ping=ping)
        beat.start()
        beats.append(beat)
    WHO.set("the last to arm the timer")
    await asyncio.wait_for(sockets.until(lambda: len(seen) == 2), 2)
    for beat in beats:
        beat.stop()
    assert seen == {1: "alice", 2: "bob"}


async def test_a_crowded_tick_is_spread_over_turns_of_the_loop(monkeypatch):
    """Sockets that connected in one second share a bucket for good: a turn runs at
    most BEATS_PER_TURN of them, the rest in the next turns, none lost."""
    monkeypatch.setattr(heartbeat_module, "BEATS_PER_TURN", 4)
    sockets = Sockets()
    fires = count_fires(monkeypatch, sockets)
    beats = [sockets.heartbeat(n) for n in range(10)]
    for beat in beats:
        beat.start()
    assert len(wheel().buckets) <= 2
    await asyncio.wait_for(sockets.until(lambda: all(sockets.pings.values())), 2)
    for beat in beats:
        beat.stop()
    assert fires[0] >= 3  # 10 beats, 4 a turn
    per_fire: dict[int, int] = {}
    for fired in sockets.fired.values():
        per_fire[fired] = per_fire.get(fired, 0) + 1
    assert max(per_fire.values()) <= 4


def test_a_closed_loop_with_an_empty_wheel_can_be_collected():
    """An empty wheel holds no timer (a timer holds its loop, the loop's entry holds
    the wheel): a test's finished loop goes."""

    async def start_and_stop() -> weakref.ref:
        sockets = Sockets()
        beat = sockets.heartbeat(1)
        beat.start()
        beat.stop()
        assert wheel().timer is None
        return weakref.ref(asyncio.get_running_loop())

    loop = asyncio.new_event_loop()
    try:
        ref = loop.run_until_complete(start_and_stop())
    finally:
        loop.close()
    del loop
    gc.collect()
    assert ref() is None


async def test_a_beat_that_stops_others_of_its_tick_does_not_break_the_firing(
    caplog,
):
    """A ping whose write stops other sockets' heartbeats (their connections lost
    at once) while their bucket is being run: they never ping, the rest still do."""
    sockets = Sockets()
    victims: list[Heartbeat] = []

    def ping_and_stop(nonce: str) -> None:
        sockets.pings[0].append(0.0)
        for victim in victims:
            victim.stop()

    killer = sockets.heartbeat(0, ping=ping_and_stop)
    victims.extend(sockets.heartbeat(n) for n in (1, 2))
    later = sockets.heartbeat(3, interval=0.4)
    while True:  # all three in one bucket (the starts may straddle a tick's end)
        for beat in (*victims, killer):  # popped last first: the killer runs first
            beat.start()
        if len({beat._at for beat in (*victims, killer)}) == 1:
            break
        for beat in (*victims, killer):
            beat.stop()
    later.start()
    await asyncio.wait_for(sockets.until(lambda: sockets.pings[3]), 2)
    killer.stop()
    later.stop()
    assert sockets.pings[0] and sockets.pings[1] == [] and sockets.pings[2] == []
    assert "Exception in callback" not in caplog.text  # the firing did not fail


async def test_a_deadline_runs_once_in_its_starters_context_within_a_tick():
    loop = asyncio.get_running_loop()
    called: list[tuple[float, str]] = []
    done = asyncio.Event()

    def callback() -> None:
        called.append((loop.time(), WHO.get()))
        done.set()

    deadline = Deadline(callback, tick=0.1)
    WHO.set("alice")
    started = loop.time()
    deadline.start(0.25)
    WHO.set("bob")
    await asyncio.wait_for(done.wait(), 2)
    ((at, who),) = called
    assert who == "alice"
    assert 0.25 - 0.01 <= at - started < 0.25 + 0.1 + 0.15  # under a tick, and slack
    assert len(wheel()) == 0  # nothing left on the wheel once it ran


async def test_a_deadline_moved_or_stopped_is_not_called_at_its_old_time():
    called: list[str] = []
    moved = Deadline(lambda: called.append("moved"), tick=0.05)
    stopped = Deadline(lambda: called.append("stopped"), tick=0.05)
    moved.start(0.1)
    stopped.start(0.1)
    moved.start(0.4)  # moved: its first time no longer holds
    stopped.stop()
    assert len(wheel()) == 1
    await asyncio.sleep(0.25)
    assert called == []
    stopped.stop()  # stopping twice is harmless
    for _ in range(40):
        if called:
            break
        await asyncio.sleep(0.05)
    assert called == ["moved"] and len(wheel()) == 0
