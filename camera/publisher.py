"""How the camera worker hands frames to a stream's viewers: one interface, three ways.

- ``LayerPublisher``: the worker shares the server's Redis. Events go out through
  ``realtime.broadcast.publish_event``: once per frame on the hub's Redis relay, and
  every server process delivers them to its own viewers (``group_send`` would copy
  each JPEG into Redis once per viewer). It also records the live state in the
  shared cache.
- ``SocketPublisher``: the server runs on the in-memory layer (``make run``), or the
  worker cannot reach its Redis: frames go over the ingest socket
  ``/ws/streams/<id>/publish/`` with the stream's publish token; the server fans
  them out. Reconnects with backoff; frames produced while disconnected are dropped
  (viewers want the newest frame, not a backlog).
- ``NullPublisher``: ``--dry-run``, to measure a camera and the detector alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from channels.layers import get_channel_layer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from camera.events import client_frame, frame_event, frame_payload, poses_event
from camera.live import LiveRecorder
from realtime.broadcast import publish_event
from realtime.groups import stream_group
from realtime.hub import get_hub
from realtime.protocol import CloseCode

logger = logging.getLogger("camera.publisher")

# Close codes after which reconnecting cannot help: the operator must act.
FATAL_CLOSES = {
    CloseCode.INVALID_CREDENTIAL: "the server refused the publish token",
    CloseCode.NOT_FOUND: "the server has no such stream",
    CloseCode.FORBIDDEN: "the server refused this publisher",
    CloseCode.NO_CREDENTIAL: "the server got no publish token",
    CloseCode.REPLACED: "another worker now publishes this stream",
}
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0


class PublishError(Exception):
    """Publishing cannot go on; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class PublishedFrame:
    """One processed frame: a JPEG per kind and, if detected, its poses payload."""

    seq: int
    captured_at: float
    jpeg: dict[str, bytes]
    poses: dict[str, Any] | None


class Publisher(Protocol):
    failure: str | None  # set when publishing has stopped for good

    async def start(self) -> None: ...

    async def publish(self, frame: PublishedFrame) -> bool:
        """Hand the frame on; ``False`` if it was dropped (not connected)."""
        ...

    async def close(self) -> None: ...


def backoff_delays(first: float = BACKOFF_FIRST_S, cap: float = BACKOFF_MAX_S):
    """0.5, 1, 2, 4 ... capped, each with +-25 % jitter so that many workers that
    lost one server do not come back in step."""
    delay = first
    while True:
        yield delay * random.uniform(0.75, 1.25)
        delay = min(delay * 2, cap)


class NullPublisher:
    """Publishes nowhere (``--dry-run``)."""

    failure: str | None = None

    async def start(self) -> None:
        pass

    async def publish(self, frame: PublishedFrame) -> bool:
        return True

    async def close(self) -> None:
        pass


class LayerPublisher:
    """Straight to the stream's group, for a worker on the server's Redis."""

    failure: str | None = None

    def __init__(self, slug: str, *, warn: Callable[[str], None] = logger.warning):
        self.group = stream_group(slug)
        self.recorder = LiveRecorder(slug)
        self.warn = warn
        self.failing = False

    async def start(self) -> None:
        pass

    async def publish(self, frame: PublishedFrame) -> bool:
        try:
            if frame.poses is not None:
                await publish_event(self.group, poses_event(frame.poses))
            for kind, jpeg in frame.jpeg.items():
                event = frame_event(
                    seq=frame.seq, kind=kind, captured_at=frame.captured_at, jpeg=jpeg
                )
                await publish_event(self.group, event)
            self._record(frame)
        except Exception as exc:  # Redis away: drop frames until it is back
            if not self.failing:
                self.warn(f"publishing failed ({exc}); dropping frames until it works")
            self.failing = True
            return False
        if self.failing:
            self.warn("publishing works again")
            self.failing = False
        return True

    def _record(self, frame: PublishedFrame) -> None:
        if frame.poses is not None:
            self.recorder.poses(frame.poses)
        for kind, jpeg in frame.jpeg.items():
            self.recorder.frame(
                seq=frame.seq, kind=kind, captured_at=frame.captured_at, jpeg=jpeg
            )

    async def close(self) -> None:
        try:
            self.recorder.flush()
        except Exception as exc:  # the cache is as unreachable as the layer
            self.warn(f"could not record the last frame ({exc})")
        await get_hub().close()
        close_pools = getattr(get_channel_layer(), "close_pools", None)
        if close_pools is not None:  # channels-redis (REALTIME_FANOUT=layer)
            await close_pools()


class SocketPublisher:
    """Over the server's ingest socket, with the stream's publish token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        connect_timeout: float = 10.0,
        say: Callable[[str], None] = logger.info,
    ) -> None:
        self.url = url
        self.token = token
        self.connect_timeout = connect_timeout
        self.say = say
        self.ws: ClientConnection | None = None
        self.failure: str | None = None
        self.tasks: set[asyncio.Task] = set()
        self.closed = False
        self.errors = 0
        self.max_text = 65536  # the server's REALTIME_MAX_TEXT_BYTES, from its greeting
        self.trimmed = 0

    async def start(self) -> None:
        """Connect once; raises ``PublishError`` if the server refuses or cannot be
        reached within ``connect_timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        delays = backoff_delays()
        while True:
            try:
                await self._connect()
                return
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                delay = next(delays)
                if loop.time() + delay > deadline:
                    raise PublishError(
                        f"could not connect to {self.url} ({_describe(exc)}): is the "
                        "server running there, and is --server its address?"
                    ) from None
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        try:
            ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self.token}"},
                open_timeout=5,
                max_size=1 << 20,
            )
        except InvalidURI as exc:
            raise PublishError(f"--server: {exc}") from None
        try:
            greeting = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            if code in FATAL_CLOSES:
                self.failure = f"{FATAL_CLOSES[code]} (close {code})"
                raise PublishError(self.failure) from None
            raise
        if greeting.get("type") != "publish.ready":
            await ws.close()
            raise PublishError(f"{self.url} is not a stream's ingest socket")
        self.max_text = int(greeting["payload"].get("max_text_bytes", self.max_text))
        self.ws = ws
        self._spawn(self._read(ws))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read(self, ws: ClientConnection) -> None:
        """Answer the server's heartbeat, report its errors, notice the close."""
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    continue
                frame = json.loads(message)
                if frame.get("type") == "ping":
                    await ws.send(client_frame("pong", frame["payload"]))
                elif frame.get("type") == "error":
                    self.errors += 1
                    if self.errors <= 10:  # a bug makes every frame fail: say it once
                        self.say(f"server error: {frame['payload'].get('message')}")
        except ConnectionClosed:
            pass
        await self._lost(ws)

    async def _lost(self, ws: ClientConnection) -> None:
        if self.ws is not ws or self.closed:
            return
        self.ws = None
        code = ws.close_code or 1006
        if code in FATAL_CLOSES:
            self.failure = f"{FATAL_CLOSES[code]} (close {code})"
            return
        self.say(f"lost the server (close {code}); reconnecting")
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        for delay in backoff_delays():
            await asyncio.sleep(delay)  # close() cancels this task
            try:
                await self._connect()
            except PublishError:
                return  # self.failure is set: the worker stops
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed):
                continue
            self.say("reconnected to the server")
            return

    async def publish(self, frame: PublishedFrame) -> bool:
        ws = self.ws
        if ws is None:
            return False
        try:
            poses = self._poses_text(frame.poses)
            if poses is not None:
                await ws.send(poses)
            for kind, jpeg in frame.jpeg.items():
                header = frame_payload(
                    seq=frame.seq,
                    kind=kind,
                    captured_at=frame.captured_at,
                    size=len(jpeg),
                )
                await ws.send(client_frame("frame", header))
                await ws.send(jpeg)
        except ConnectionClosed:
            await self._lost(ws)
            return False
        return True

    def _poses_text(self, poses: dict[str, Any] | None) -> str | None:
        """The ``poses`` envelope, within the server's text limit.

        Transforms grow as n² with the markers in view (about 35 markers fill 64
        KiB): past the limit they are left out (a viewer can compose them from the
        markers' poses), and poses too large even without them are not sent.
        """
        if poses is None:
            return None
        text = client_frame("poses", poses)
        if len(text.encode()) <= self.max_text:
            return text
        self.trimmed += 1
        if self.trimmed == 1:
            self.say(
                f"poses of {len(poses['markers'])} markers exceed the server's "
                f"{self.max_text} bytes: sending them without transforms"
            )
        text = client_frame("poses", {**poses, "transforms": []})
        return text if len(text.encode()) <= self.max_text else None

    async def close(self) -> None:
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return f"closed {exc.rcvd.code if exc.rcvd else 1006}"
    return str(exc) or type(exc).__name__
