"""SIGTERM on a real ``manage.py serve`` (daphne and uvicorn): every socket 4012 within
the window, new ones 4013, /readyz 503 meanwhile, exit 0 by the deadline; live-session
clients of a drained process resume on another with ``since`` and miss nothing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import close_code, frame
from tests.e2e.server import ROOT, DaphneServer
from tests.e2e.test_sessions_e2e import (
    Peer,
    join_guest,
    new_session,
    open_peer,
    room_url,
)
from tests.services import fresh_postgres_database, redis_url

pytestmark = pytest.mark.timeout(120)

WINDOW, DEADLINE = 2.0, 6.0


class ServeServer(DaphneServer):
    """The server as ``make run`` and deploy/systemd start it: ``manage.py serve``."""

    def start(self) -> None:
        if self.migrate:
            self.manage("migrate", "--noinput")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "manage.py", "serve", "--server", self.server]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()


def _drain_env(**extra: str) -> dict[str, str]:
    return {
        "DRAIN_WINDOW": str(WINDOW),
        "DRAIN_DEADLINE": str(DEADLINE),
        "COPILOT_AGENT": "tests.copilot.agents.StoryAgent",
        **extra,
    }


def _readyz(server: DaphneServer) -> int | None:
    try:
        with urllib.request.urlopen(server.url("/readyz"), timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None  # stopped listening


async def _closed(ws, started: float) -> tuple[int, float]:
    code = await close_code(ws, timeout=WINDOW + 3)
    return code, time.monotonic() - started


@pytest.mark.parametrize("server_name", ["daphne", "uvicorn"])
def test_sigterm_drains_every_endpoint(tmp_path, server_name):
    with ServeServer(tmp_path, server=server_name, env=_drain_env()) as srv:
        alice, bob = srv.create_user("alice"), srv.create_user("bob")
        session = new_session(srv, alice["access"], "drain")
        guest = join_guest(srv, session["code"], "g")
        asyncio.run(_drain_scenario(srv, alice, bob, session["code"], guest["token"]))
        srv.process.wait(timeout=DEADLINE + 5)
        assert srv.process.returncode == 0, srv.log()
        assert "drained: 3 closed" in srv.log()


async def _drain_scenario(srv, alice, bob, code: str, guest_token: str) -> None:
    room = await connect(room_url(srv, code, guest_token), open_timeout=10)
    assert (await frame(room, "session.welcome"))["type"] == "session.welcome"
    copilot = await connect(srv.ws_url(f"/ws/copilot/?token={alice['access']}"))
    assert (await frame(copilot))["type"] == "connected"
    messenger = await connect(srv.ws_url(f"/ws/messenger/?token={bob['access']}"))
    assert (await frame(messenger, "system.connected"))["type"] == "system.connected"

    started = time.monotonic()
    srv.process.send_signal(signal.SIGTERM)
    watchers = [
        asyncio.ensure_future(_closed(ws, started)) for ws in (room, copilot, messenger)
    ]
    await asyncio.sleep(0.2)
    assert await asyncio.to_thread(_readyz, srv) == 503
    late = await connect(srv.ws_url(f"/ws/echo/?token={alice['access']}"))
    assert await close_code(late) == 4013
    for code_, after in await asyncio.gather(*watchers):
        assert code_ == 4012
        assert after < WINDOW + 1.0  # within the window (and a little transport)


def test_session_clients_resume_on_another_process_missing_nothing(tmp_path):
    database_url, drop = fresh_postgres_database()
    env = _drain_env(
        REDIS_URL=redis_url(), CACHE_KEY_PREFIX=f"e2e-{uuid.uuid4().hex[:8]}"
    )
    try:
        with ServeServer(tmp_path / "a", env=env, database_url=database_url) as a:
            with ServeServer(
                tmp_path / "b", env=env, database_url=database_url, migrate=False
            ) as b:
                host = a.create_user("host")
                asyncio.run(_resume_scenario(a, b, host))
                b.process.wait(timeout=DEADLINE + 5)
                assert b.process.returncode == 0, b.log()
    finally:
        drop()


async def _resume_scenario(a, b, host: dict) -> None:
    session = new_session(a, host["access"], "rolling")
    code = session["code"]
    guests = [join_guest(a, code, f"g{i}") for i in range(3)]
    writer, _ = await open_peer(room_url(a, code, guests[0]["token"]))
    on_b = [(await open_peer(room_url(b, code, g["token"])))[0] for g in guests[1:]]
    for i in range(3):
        await writer.send("chat.send", {"content": f"before-{i}"})
    for peer in on_b:
        assert [m["seq"] for m in await peer.of_type("chat.message", 3)] == [1, 2, 3]

    b.process.send_signal(signal.SIGTERM)

    async def keep_writing() -> None:  # the session goes on during the drain
        for i in range(6):
            await writer.send("chat.send", {"content": f"during-{i}"})
            await asyncio.sleep(WINDOW / 6)

    async def follow_then_resume(peer: Peer, token: str) -> list[int]:
        seqs = [1, 2, 3]  # read above
        while (
            got := await asyncio.wait_for(peer.frames.get(), WINDOW + 3)
        ) is not None:
            if got["type"] == "chat.message":
                seqs.append(got["payload"]["seq"])
        assert peer.ws.close_code == 4012
        resumed, _ = await open_peer(room_url(a, code, token, since=seqs[-1]))
        last = seqs[-1]

        def caught_up(got: list[dict]) -> bool:  # synced, and live up to the last
            seen = [x["payload"]["seq"] for x in got if x["type"] == "chat.message"]
            synced = any(x["type"] == "session.synced" for x in got)
            return synced and max([last, *seen]) == total

        rest = await resumed.until(caught_up, timeout=10)
        seqs += [f["payload"]["seq"] for f in rest if f["type"] == "chat.message"]
        await resumed.close()
        return seqs

    total = 3 + 6
    writing = asyncio.ensure_future(keep_writing())
    tokens = [g["token"] for g in guests[1:]]
    results = await asyncio.gather(
        *(follow_then_resume(p, t) for p, t in zip(on_b, tokens, strict=True))
    )
    await writing
    for seqs in results:
        # Live on b until its 4012, then replayed and live on a: each seq once.
        assert seqs == list(range(1, total + 1))
    await writer.close()
