"""What the fault tests share: users, REST calls, resuming clients, a Redis and a
TCP proxy of their own, process figures."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from scripts.cluster import Cluster
from scripts.services import free_port, port_open, stop_process, wait_for

USER_SNIPPET = """
import json
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken
out = []
for name in {names!r}:
    user = get_user_model().objects.create_user(name, password="pw-Secret-123")
    token = str(AccessToken.for_user(user))
    out.append({{"name": name, "id": user.pk, "access": token}})
print(json.dumps(out))
"""


def create_users(cluster: Cluster, *names: str) -> list[dict]:
    """Users with an access token each, in one ``manage.py shell``."""
    out = cluster.manage("shell", "-c", USER_SNIPPET.format(names=list(names)))
    return json.loads(out.strip().splitlines()[-1])


def request(
    base: str, method: str, path: str, body: dict | None = None, token: str = ""
) -> tuple[int, dict]:
    """A JSON request to ``base + path``: ``(status, body)``."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as err:
        raw = err.read() or b"{}"
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, {"raw": raw.decode(errors="replace")[:200]}


def full_jitter(attempt: int, *, base: float, cap: float) -> float:
    """AWS's "full jitter" backoff, as a browser client would wait: uniform in
    ``[0, min(cap, base * 2**attempt)]``, so a crowd spreads out instead of
    retrying in step."""
    return random.uniform(0, min(cap, base * 2**attempt))


RETRYABLE_CONNECT = (OSError, InvalidHandshake, TimeoutError, ConnectionClosed)


async def connect_with_backoff(
    url: str,
    *,
    deadline: float,
    base: float = 0.2,
    cap: float = 3.0,
    wait_first: bool = False,
    **options,
):
    """Connect, retrying with full-jitter backoff until ``deadline`` (monotonic);
    ``wait_first``: a reconnect, which waits its jitter before the first attempt
    too, as static/realtime/client.js does."""
    attempt = 0
    if wait_first:
        await asyncio.sleep(full_jitter(0, base=base, cap=cap))
    while True:
        try:
            return await connect(url, open_timeout=5, **options)
        except RETRYABLE_CONNECT as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no connection to {url}: {exc!r}") from exc
            if isinstance(exc, InvalidStatus) and exc.response.status_code < 500:
                raise
        await asyncio.sleep(full_jitter(attempt, base=base, cap=cap))
        attempt += 1


class Resuming:
    """A client that keeps one stream (a session room, a messenger conversation)
    and, whenever its socket closes, reconnects with ``since`` = the last ``seq``
    it holds, as docs/protocol.md tells clients to; answers pings.

    ``url(since)`` builds the socket URL; ``opened(ws, since)`` sends what the
    stream needs after connecting (a messenger subscribe); ``seq_of(frame)`` is the
    stream's sequence number in a frame, or ``None``; ``connected`` is set once a
    frame of type ``ready`` arrives (the stream is joined: nothing sent after it
    can be missed).
    """

    def __init__(
        self,
        url: Callable[[int | None], str],
        *,
        seq_of: Callable[[dict], int | None],
        ready: str,
        opened: Callable | None = None,
        resume: bool = True,
    ) -> None:
        self.ready = ready
        self.url = url
        self.seq_of = seq_of
        self.opened = opened
        self.resume = resume
        self.seqs: set[int] = set()
        self.closes: list[int] = []
        self.frames: asyncio.Queue[dict] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.connects = 0
        self.ws = None
        self.task: asyncio.Task | None = None
        self.stopped = False

    @property
    def last(self) -> int | None:
        return max(self.seqs) if self.seqs else None

    def start(self) -> Resuming:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        since: int | None = None
        while not self.stopped:
            ws = await connect_with_backoff(
                self.url(since), deadline=time.monotonic() + 60
            )
            self.ws = ws
            self.connects += 1
            if self.opened is not None:
                await self.opened(ws, since)
            try:
                async for text in ws:
                    frame = json.loads(text)
                    if frame["type"] == "ping":
                        nonce = frame["payload"]["nonce"]
                        await ws.send(
                            json.dumps({"type": "pong", "payload": {"nonce": nonce}})
                        )
                        continue
                    if frame["type"] == self.ready:
                        self.connected.set()
                    seq = self.seq_of(frame)
                    if seq is not None:
                        self.seqs.add(seq)
                    self.frames.put_nowait(frame)
            except ConnectionClosed:
                pass
            self.connected.clear()
            self.closes.append(ws.close_code or 1006)
            if not self.resume:
                return
            since = self.last if self.last is not None else 0

    async def send(self, type_: str, payload: dict, **extra) -> None:
        await self.ws.send(json.dumps({"type": type_, "payload": payload, **extra}))

    async def wait_for_seqs(self, wanted: set[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not wanted <= self.seqs:  # noqa: ASYNC110 - seqs come from a reader
            assert time.monotonic() < deadline, (
                f"missing {sorted(wanted - self.seqs)[:20]} after {timeout} s; "
                f"connects {self.connects}, closes {self.closes}"
            )
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.stopped = True
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: S110 - stopping
                pass


# ---------------------------------------------------------------- a Redis of our own
class Chatter:
    """Every client sends ``chat.send`` ten times a second while it is connected
    (a send refused by a socket closing under it waits for the next turn)."""

    def __init__(self, clients: list[Resuming]) -> None:
        self.stopped = asyncio.Event()
        self.tasks = [
            asyncio.create_task(self._talk(client, n))
            for n, client in enumerate(clients)
        ]

    async def _talk(self, client: Resuming, n: int) -> None:
        i = 0
        while not self.stopped.is_set():
            if client.connected.is_set():
                try:
                    await client.send("chat.send", {"content": f"{n}:{i}"})
                    i += 1
                except Exception:  # noqa: S110 - closed under us: the next turn waits
                    pass
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self.stopped.set()
        await asyncio.gather(*self.tasks)


class OwnRedis:
    """A Redis on a free port that the test may kill and start again; never the
    machine's shared one."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=(self.workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: port_open("127.0.0.1", self.port), timeout=10, what="redis")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# ---------------------------------------------------------------- a TCP proxy
class TcpProxy:
    """A loopback TCP forwarder to ``target`` on a thread of its own; ``cut()``
    drops every forwarded connection and refuses new ones until ``restore()``: a
    database that is unreachable without being stopped."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.open = True

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)

    async def _serve(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader, writer) -> None:
        if not self.open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self.writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer)
        )

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.writers.discard(writer)
            writer.transport.abort()

    def _call(self, fn) -> None:
        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def cut(self) -> None:
        def cut() -> None:
            self.open = False
            for writer in list(self.writers):
                writer.transport.abort()

        self._call(cut)

    def restore(self) -> None:
        def restore() -> None:
            self.open = True

        self._call(restore)

    def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self._call(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ---------------------------------------------------------------- figures
def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (``/proc``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def metric(base: str, name: str, label: str = "") -> float:
    """One sample of ``/metrics`` (0 when absent); loopback may read it."""
    with urllib.request.urlopen(base.rstrip("/") + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    labels = rf"\{{{re.escape(label)}\}}" if label else ""
    found = re.search(rf"^{name}{labels} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
