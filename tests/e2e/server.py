"""A real daphne process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from realtime.listening import UVICORN_WS

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_uvicorn(application: Any, **options: Any) -> tuple[Any, Any, int]:
    """``manage.py serve``'s uvicorn server in this process's event loop, on a free
    port, once it listens: (server, its serving task, port)."""
    import asyncio

    from realtime.management.commands.serve import uvicorn_server

    port = free_port()
    server = uvicorn_server(application, host="127.0.0.1", port=port, **options)
    serving = asyncio.ensure_future(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    return server, serving, port


class DaphneServer:
    """``with DaphneServer(tmp_path, env={...}) as srv: srv.ws_url("/ws/echo/")``."""

    def __init__(
        self,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        database_url: str | None = None,
        migrate: bool = True,
        server: str = "daphne",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.workdir / f"daphne-{self.port}.log"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"REDIS_URL", "DATABASE_URL", "COVERAGE_PROCESS_START"}
        }
        self.env.update(
            DEBUG="1",
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=database_url or f"sqlite:///{self.workdir / 'e2e.sqlite3'}",
            PYTHONUNBUFFERED="1",
        )
        self.env.update(env or {})
        self.migrate = migrate
        self.server = server  # "daphne" (make run's) or "uvicorn"
        self.process: subprocess.Popen | None = None

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> DaphneServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self.migrate:
            self.manage("migrate", "--noinput")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        if self.server == "uvicorn":
            command = [str(BIN / "uvicorn"), "config.asgi:application"]
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
            command += ["--ws", UVICORN_WS]  # as the project starts it
        else:
            command = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port)]
            command += ["config.asgi:application"]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not start in {timeout} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def kill(self) -> None:
        """``kill -9``: no cleanup of any kind."""
        self.stop(signal.SIGKILL)

    # -------------------------------------------------------------- helpers
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def python(self, code: str) -> str:
        """Run ``code`` in a Django shell against this server's database."""
        return self.manage("shell", "-c", code)

    def create_user(self, username: str, *, staff: bool = False) -> dict:
        """A user and a fresh access + refresh token pair."""
        out = self.python(
            "import json\n"
            "from django.contrib.auth import get_user_model\n"
            "from rest_framework_simplejwt.tokens import RefreshToken\n"
            f"u = get_user_model().objects.create_user({username!r},"
            " password='pw-Secret-123',"
            f" is_staff={staff!r}, is_superuser={staff!r})\n"
            "r = RefreshToken.for_user(u)\n"
            "print(json.dumps({'id': u.pk, 'access': str(r.access_token),"
            " 'refresh': str(r)}))\n"
        )
        return json.loads(out.strip().splitlines()[-1])

    def request(
        self, method: str, path: str, body: dict | None = None, token: str | None = None
    ) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as reply:
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


def run_on_fresh_postgres(workdir: Path, script: str) -> Any:
    """Migrate a fresh PostgreSQL database, run ``script`` in a Django shell on it
    and return the JSON its last line printed; the database is dropped after."""
    from tests.services import fresh_postgres_database

    database_url, drop = fresh_postgres_database()
    try:
        server = DaphneServer(workdir, database_url=database_url)
        server.manage("migrate", "--noinput")
        return json.loads(server.python(script).strip().splitlines()[-1])
    finally:
        drop()
