"""Target abstraction: start a server, get N connection URLs, supported workloads."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
HOST = "127.0.0.1"


class TargetUnavailable(RuntimeError):
    """The target cannot be set up; the harness skips it and prints this message."""


@dataclass
class Room:
    """A live session: a URL per subscriber (distinct participants) and the sender's."""

    urls: list[str]
    sender_url: str


@dataclass
class Stream:
    """A camera stream: the ingest URL, a URL per viewer, the stalled viewer's."""

    publish_url: str
    viewer_urls: list[str]
    stall_url: str
    wait_first: bool = (
        True  # viewers wait for a first message (stream.info) before counting
    )


@dataclass
class Messenger:
    """Messenger users' devices and who sends where (workload W5).

    ``devices``: one dict per socket, ``{"url", "subscribe": [conversation ids],
    "sends": {phase: conversation id}}`` (phases ``direct`` and ``group``); a device
    sends only in the phases it names. Every URL is already authenticated.
    """

    devices: list[dict]
    users: int
    directs: int
    group_size: int


DEVICES_PER_USER = 2
# The performance issue's workloads, each run with both load clients (run.py).
ISSUE_WORKLOADS = frozenset({"N1", "N2", "N3", "N4", "N5"})


def messenger_plan(
    n_users: int, n_directs: int, group_size: int
) -> tuple[list[tuple[int, int]], list[int]]:
    """Which user indexes pair up (user 2k with 2k + 1) and which are in the group
    (the first group_size); the same plan for every target."""
    if 2 * n_directs > n_users or group_size > n_users:
        raise ValueError("more directs or group members than users")
    return [(2 * k, 2 * k + 1) for k in range(n_directs)], list(range(group_size))


def messenger_devices(
    urls: list[list[str]],
    pairs: list[tuple[int, int]],
    direct_ids: list[str],
    group: list[int],
    group_id: str,
) -> list[dict]:
    """Device dicts for user i's URLs urls[i]: each subscribes to its user's
    conversations; a pair's first user's first device sends in it, and the group's
    first member's first device sends in the group."""
    convs: list[list[str]] = [[] for _ in urls]
    sends: list[dict] = [{} for _ in urls]
    for (a, b), cid in zip(pairs, direct_ids, strict=True):
        convs[a].append(cid)
        convs[b].append(cid)
        sends[a]["direct"] = cid
    for i in group:
        convs[i].append(group_id)
    if group:
        sends[group[0]]["group"] = group_id
    out = []
    for i, user_urls in enumerate(urls):
        for d, url in enumerate(user_urls):
            out.append(
                {"url": url, "subscribe": convs[i], "sends": sends[i] if d == 0 else {}}
            )
    return out


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Target:
    """Base class: adapters give `command` and URL builders; lifecycle lives here."""

    name = "target"
    workloads: frozenset[str] = frozenset({"W1", "W2", "W3", "W4"})
    unset_env: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = 0

    # ---- what an adapter provides ----------------------------------------------
    def prepare(self) -> None:
        """One-time setup before the first start; raise TargetUnavailable to skip."""

    def command(self, port: int) -> list[str]:
        """The server command line, listening on 127.0.0.1:port."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """Extra environment variables for the server process."""
        return {}

    def ready(self) -> None:
        """Called once the port accepts connections (log in, warm up...)."""

    def finish(self) -> None:
        """Called once after the target's last workload (clean up files...)."""

    def session_room(self, n: int) -> Room:
        """Create a live session with n subscribers plus one sender."""
        raise NotImplementedError

    def session_rooms(
        self, n_rooms: int, size: int, users_share: float = 0.0
    ) -> list[list[str]]:
        """n_rooms live sessions of size sockets each (N1). A target with accounts
        makes round(size * users_share) of each room signed-in users presenting a
        JWT and the rest guests; here every socket is what session_room gives."""
        rooms = []
        for _ in range(n_rooms):
            room = self.session_room(size - 1)
            rooms.append([*room.urls, room.sender_url])
        return rooms

    def stream(self, n_viewers: int) -> Stream:
        """Create a camera stream with n_viewers viewers plus a stalled one."""
        raise NotImplementedError

    def messenger(self, n_users: int, n_directs: int, group_size: int) -> Messenger:
        """Create n_users users with two devices each, n_directs direct conversations
        and one group (``messenger_plan``); return the devices (W5)."""
        raise NotImplementedError

    # ---- lifecycle ---------------------------------------------------------------
    @property
    def base_http(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://{HOST}:{self.port}"

    @property
    def base_ws(self) -> str:
        """ws://127.0.0.1:port"""
        return f"ws://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.proc.pid if self.proc else None

    def start(
        self, log_path: Path, cpus: set[int] | None = None, timeout: float = 60.0
    ) -> None:
        """Start on a free loopback port, optionally pinned to cpus; wait for listen."""
        self.port = free_port()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.env(),
        }
        for key in self.unset_env:
            env.pop(key, None)
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(self.port),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-800:]
                raise TargetUnavailable(
                    f"{self.name} exited with {self.proc.returncode}: {tail}"
                )
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise TargetUnavailable(
                f"{self.name} did not listen within {timeout:.0f} s"
            )
        self.ready()

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL after 5 s."""
        if not self.proc:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self.proc = None


class OpenTarget(Target):
    """A server without authentication: participants are named in the query string."""

    def session_room(self, n: int) -> Room:
        """URLs of a fresh room: `?participant_id=p<i>&nickname=guest<i>`."""
        code = uuid.uuid4().hex[:8]
        url = f"{self.base_ws}/ws/sessions/{code}/"
        url += "?participant_id=p{0}&nickname=guest{0}"
        return Room([url.format(i) for i in range(n)], url.format("sender"))

    def stream(self, n_viewers: int) -> Stream:
        """URLs of a fresh stream."""
        sid = uuid.uuid4().hex[:8]
        viewer = f"{self.base_ws}/ws/streams/{sid}/"
        return Stream(f"{viewer}publish/", [viewer] * n_viewers, viewer)


def uvicorn_command(app: str, port: int) -> list[str]:
    """One uvicorn process serving ``app``: the same flags for every uvicorn target."""
    return [PY, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)] + [
        "--log-level",
        "warning",
        "--no-access-log",
        "--backlog",
        "2048",
    ]
