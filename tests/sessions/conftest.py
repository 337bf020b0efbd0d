"""Helpers for live-session tests: sessions, guests and connected sockets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from sessions_app import notices, services
from tests.conftest import communicator, recv, recv_type


@pytest.fixture
def host(make_user):
    return make_user("hosty")


@pytest.fixture
def session(host):
    return services.session_create(host=host, title="Town hall")


async def create_session(host, **extra):
    return await sync_to_async(services.session_create)(
        host=host, title=extra.pop("title", "Town hall"), **extra
    )


async def guest(session, nickname: str = "ann") -> tuple[int, str]:
    """A new guest of ``session``: ``(participant_id, token)``."""
    participant, token = await sync_to_async(services.participant_guest_join)(
        session=session, nickname=nickname
    )
    return participant.pk, token


def room_path(code: str, since: int | str | None = None) -> str:
    path = f"/ws/sessions/{code}/"
    return path if since is None else f"{path}?since={since}"


async def connect(
    code: str, *, token: str | None = None, bearer: str | None = None, since=None
) -> WebsocketCommunicator:
    comm = communicator(room_path(code, since), token=token, bearer=bearer)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


async def join(code: str, token: str | None = None, *, since=None, bearer=None):
    """A connected socket and its welcome payload."""
    comm = await connect(code, token=token, since=since, bearer=bearer)
    welcome = await recv_type(comm, "session.welcome", timeout=5)
    return comm, welcome["payload"]


async def frames_until(comm, done, timeout: float = 5) -> list[dict]:
    """Every frame until ``done(frames)`` is true; fails after ``timeout`` seconds."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while not done(frames):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {[f['type'] for f in frames]}"
        frames.append(await recv(comm, timeout=left))
    return frames


async def of_type(comm, type_: str, count: int, timeout: float = 5) -> list[dict]:
    """The payloads of the next ``count`` frames of ``type_`` (others skipped)."""
    frames = await frames_until(
        comm, lambda got: sum(f["type"] == type_ for f in got) >= count, timeout
    )
    return [f["payload"] for f in frames if f["type"] == type_]


async def nothing_of(comm, type_: str, wait: float = 0.3) -> None:
    """Assert no frame of ``type_`` arrives within ``wait`` seconds.

    Polls the output queue: a timed-out ``receive_from`` would cancel the app.
    """
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if comm.output_queue.empty():
            await asyncio.sleep(0.02)
            continue
        message = comm.output_queue.get_nowait()
        if message["type"] == "websocket.send":
            frame = json.loads(message["text"])
            assert frame["type"] != type_, frame


async def send(comm, type_: str, payload=None, **extra) -> None:
    await comm.send_to(
        text_data=json.dumps({"type": type_, "payload": payload or {}, **extra})
    )


async def disconnect_all(*comms) -> None:
    for comm in comms:
        await comm.disconnect()


async def next_of(comm, type_: str, timeout: float = 5) -> dict:
    """The next whole frame of ``type_`` (request_id included), others skipped."""
    frames = await frames_until(comm, lambda f: f and f[-1]["type"] == type_, timeout)
    return frames[-1]


async def settled(coalescer=None, timeout: float = 5) -> None:
    """Wait until the presence notices of every room were sent and the rooms
    forgotten (a quiet window after the last flush); fails after ``timeout``."""
    coalescer = coalescer or notices.coalescer()
    deadline = time.monotonic() + timeout
    while coalescer.rooms or coalescer.flushing:
        assert time.monotonic() < deadline, f"still pending: {coalescer.rooms}"
        await asyncio.sleep(0.01)
