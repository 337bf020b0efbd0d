"""A load-generator worker: owns a share of the sockets, obeys commands on a pipe."""

from __future__ import annotations

import asyncio
import contextlib
import time

from . import clients
from .hist import histogram
from .wsclient import LAST_RX, connect

ROLES = {"sub": clients.Subscriber, "pinger": clients.Pinger, "viewer": clients.Viewer}


class Worker:
    """Command handlers; each `cmd_<name>` returns a picklable result."""

    def __init__(self, conn, wid: int) -> None:
        self.conn = conn
        self.wid = wid
        self.stats = clients.Stats()
        self.conns: dict[str, list] = {
            "sub": [],
            "pinger": [],
            "viewer": [],
            "dev": [],
        }
        self.sender: clients.Sender | None = None
        self.senders: list[clients.TaggedSender] = []  # N3, N4: several per room
        self.publisher: clients.Publisher | None = None
        self.pub_task: asyncio.Task | None = None
        self.pub_result: dict = {}
        self.stalled: list = []

    async def serve(self) -> None:
        """Run commands until `exit` or until the parent goes away."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                name, kw = await loop.run_in_executor(None, self.conn.recv)
            except (EOFError, OSError):
                break
            try:
                res = ("ok", await getattr(self, f"cmd_{name}")(**kw))
            except Exception as exc:  # reported to the parent, which decides
                res = ("err", f"worker {self.wid}: {name}: {exc!r}")
            self.conn.send(res)
            if name == "exit":
                break
        await self.cmd_close_all()

    async def cmd_exit(self) -> None:
        """Stop serving."""

    async def cmd_connect(
        self, role, urls, concurrency=50, timeout=30.0, wait_first=True, limit=120.0
    ):
        """Open a client of role per URL, `concurrency` at a time, within `limit` s."""
        sem = asyncio.Semaphore(max(1, concurrency))
        factory = ROLES[role]
        times: list[float] = []
        errors: list[str] = []

        async def one(url: str) -> None:
            async with sem:
                t0 = time.perf_counter()
                try:
                    c = await connect(
                        url, factory, timeout, wait_first, stats=self.stats
                    )
                except Exception as exc:
                    errors.append(repr(exc)[:200])
                    return
                times.append((time.perf_counter() - t0) * 1000.0)
                self.conns[role].append(c)
                if role == "viewer":
                    c.subscribe()

        tasks = [asyncio.create_task(one(u)) for u in urls]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=limit)
            for t in pending:
                t.cancel()
                errors.append(f"not connected within {limit:.0f} s")
        return {
            "ok": len(times),
            "failed": len(errors),
            "errors": errors[:5],
            "ms": times,
        }

    async def cmd_m_connect(self, devices, concurrency=50, timeout=30.0, limit=120.0):
        """W5: open a Device per dict, wait for its first message, subscribe it to
        its conversations and wait for every reply; `concurrency` at a time."""
        sem = asyncio.Semaphore(max(1, concurrency))
        times: list[float] = []
        errors: list[str] = []

        async def one(d: dict) -> None:
            async with sem:
                t0 = time.perf_counter()
                c = None
                try:
                    c = await connect(
                        d["url"], clients.Device, timeout, True, stats=self.stats
                    )
                    c.sends = {k: v.encode() for k, v in d["sends"].items()}
                    await asyncio.wait_for(c.subscribe(d["subscribe"]), timeout)
                except Exception as exc:
                    errors.append(repr(exc)[:200])
                    if c is not None:
                        c.close()
                    return
                times.append((time.perf_counter() - t0) * 1000.0)
                self.conns["dev"].append(c)

        tasks = [asyncio.create_task(one(d)) for d in devices]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=limit)
            for t in pending:
                t.cancel()
                errors.append(f"not connected within {limit:.0f} s")
        return {
            "ok": len(times),
            "failed": len(errors),
            "errors": errors[:5],
            "ms": times,
        }

    async def cmd_m_senders(self, phase):
        """W5: how many of this worker's devices send in `phase`."""
        return sum(1 for d in self.conns["dev"] if phase in d.sends)

    async def cmd_m_send(self, phase, mode="rate", rate=1.0, window=1, duration=5.0):
        """W5: this worker's senders of `phase` send for `duration` s: together at
        `rate` msg/s (round robin), or each keeping `window` unechoed messages."""
        senders = [d for d in self.conns["dev"] if phase in d.sends]
        for d in senders:
            d.sent = d.count = 0
        t0_ns = time.time_ns()
        t0 = time.monotonic()
        end = t0 + duration
        if senders and mode == "rate":
            interval = 1.0 / rate
            nxt = t0
            i = 0
            while time.monotonic() < end:
                senders[i % len(senders)].send_message(phase)
                i += 1
                nxt += interval
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
        elif senders:

            async def loop(d: clients.Device) -> None:
                while time.monotonic() < end and not d.closed.done():
                    while d.sent - d.count < window:
                        d.send_message(phase)
                    d.echo.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(d.echo.wait(), 1.0)

            await asyncio.gather(*(loop(d) for d in senders))
        return {
            "senders": len(senders),
            "sent": sum(d.sent for d in senders),
            "echoed": sum(d.count for d in senders),
            "t0_ns": t0_ns,
            "t1_ns": time.time_ns(),
        }

    async def cmd_m_errors(self):
        """W5: error frames the devices received (a few of each device's first)."""
        return [e for d in self.conns["dev"] for e in d.errors]

    async def cmd_connect_sender(self, url, timeout=30.0, wait_first=True):
        """Open the W1 sender (joins last: a join-order fan-out reaches it last)."""
        self.sender = await connect(
            url, clients.Sender, timeout, wait_first, stats=self.stats
        )
        return True

    async def cmd_connect_senders(self, urls, timeout=30.0):
        """Open tagged senders (N3, N4), one after another, after the receivers."""
        for url in urls:
            s = await connect(
                url, clients.TaggedSender, timeout, True, stats=self.stats
            )
            s.tag = b"~w%ds%d~" % (self.wid, len(self.senders))
            self.senders.append(s)
        return len(self.senders)

    async def cmd_send_window(self, window=4, duration=5.0, pad=0):
        """Every tagged sender keeps `window` unechoed messages in flight."""
        padding = b" " * pad
        for s in self.senders:
            s.sent = s.count = 0
        t0_ns = time.time_ns()
        end = time.monotonic() + duration

        async def loop(s: clients.TaggedSender) -> None:
            while time.monotonic() < end and not s.closed.done():
                while s.sent - s.count < window:
                    s.send_chat(padding)
                s.echo.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.echo.wait(), 1.0)

        await asyncio.gather(*(loop(s) for s in self.senders))
        return {
            "sent": sum(s.sent for s in self.senders),
            "echoed": sum(s.count for s in self.senders),
            "t0_ns": t0_ns,
            "t1_ns": time.time_ns(),
        }

    async def cmd_quiesce(self, idle=0.5, limit=30.0):
        """Wait until nothing arrived for `idle` s (at most `limit` s)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if time.time_ns() - LAST_RX[0] >= idle * 1e9:
                break
            await asyncio.sleep(idle / 5)
        return time.monotonic() - t0

    async def cmd_reset(self):
        """Zero the statistics and per-connection counters."""
        self.stats.reset()
        for group in self.conns.values():
            for c in group:
                c.count = 0
        if self.sender:
            self.sender.sent = self.sender.count = 0
        for s in self.senders:
            s.sent = s.count = 0
        return True

    async def cmd_progress(self):
        """Deliveries counted so far (cheap)."""
        return self.stats.count

    async def cmd_stats(self, role="sub"):
        """Counts, first/last receive times, per-socket counts, latency histogram."""
        counts = [c.count for c in self.conns[role]]
        return {
            "count": self.stats.count,
            "first_ns": self.stats.first_ns,
            "last_ns": self.stats.last_ns,
            "hist": histogram(self.stats.lat),
            "per_conn": counts,
            "closed": sum(1 for c in self.conns[role] if c.closed.done()),
            "rate_limited": self.stats.rate_limited,
        }

    async def cmd_send(self, mode="rate", rate=2.0, window=4, duration=5.0, pad=0):
        """W1 sender: fixed rate, or a closed loop of `window` unechoed messages."""
        s = self.sender
        padding = b" " * pad
        s.sent = s.count = 0
        t0_ns = time.time_ns()
        t0 = time.monotonic()
        end = t0 + duration
        if mode == "rate":
            interval = 1.0 / rate
            nxt = t0
            while time.monotonic() < end:
                s.send_chat(padding)
                nxt += interval
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
        else:
            while time.monotonic() < end and not s.closed.done():
                while s.sent - s.count < window:
                    s.send_chat(padding)
                s.echo.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.echo.wait(), 1.0)
        return {
            "sent": s.sent,
            "t0_ns": t0_ns,
            "t1_ns": time.time_ns(),
            "echoed": s.count,
        }

    async def cmd_run_pingers(self, duration=5.0):
        """Run every pinger's closed loop for `duration` seconds."""
        deadline = time.monotonic() + duration
        t0_ns = time.time_ns()
        futs = [p.start(deadline) for p in self.conns["pinger"]]
        if futs:
            await asyncio.wait(futs, timeout=duration + 10.0)
        return {"t0_ns": t0_ns, "t1_ns": time.time_ns()}

    async def cmd_viewer_counts(self):
        """Frames received so far by each viewer."""
        return [c.count for c in self.conns["viewer"]]

    async def cmd_publish_start(
        self, url, fps=30.0, frame_bytes=50_000, max_buffer=1_000_000
    ):
        """Connect the camera and publish in the background until publish_stop."""
        self.publisher = await connect(
            url, clients.Publisher, 30.0, False, stats=clients.Stats()
        )
        tail = b"\x00" * max(0, frame_bytes - 12) + b"\xff\xd9"  # ends like a JPEG
        self.pub_result = {"sent": 0, "skipped_backpressure": 0}

        async def run() -> None:
            interval = 1.0 / fps
            nxt = time.monotonic()
            seq = 0
            while not self.publisher.closed.done():
                seq += 1
                if self.publisher.transport.get_write_buffer_size() > max_buffer:
                    self.pub_result["skipped_backpressure"] += 1
                else:
                    self.publisher.publish(seq, tail)
                    self.pub_result["sent"] += 1
                nxt += interval
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))

        self.pub_task = asyncio.create_task(run())
        return True

    async def cmd_publish_stop(self):
        """Stop publishing; return frames sent and skipped (server not reading)."""
        if self.pub_task:
            self.pub_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pub_task
            self.pub_task = None
        return dict(self.pub_result)

    async def cmd_stall(self, url):
        """Add a viewer that completes the handshake, subscribes, then never reads."""
        self.stalled.append(await clients.open_stalled(url))
        return True

    async def cmd_close_all(self):
        """Close every socket this worker holds."""
        if self.pub_task:
            await self.cmd_publish_stop()
        everyone = [c for group in self.conns.values() for c in group]
        everyone += [c for c in (self.sender, self.publisher) if c]
        everyone += self.senders
        for c in everyone:
            c.close()
        for s in self.stalled:
            s.close()
        self.stalled.clear()
        for group in self.conns.values():
            group.clear()
        self.senders = []
        self.sender = self.publisher = None
        await asyncio.sleep(0.2)
        return len(everyone)


def main(conn, wid: int) -> None:
    """Process entry point."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(Worker(conn, wid).serve())
    else:
        uvloop.run(Worker(conn, wid).serve())
