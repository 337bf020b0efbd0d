"""Adapter for the project's own server ("ours"), set up through its REST flow.

Status: runs against the current tree for W1-W5. It relies on PROTOCOL.md §3, §5, §8,
§9 and on these names, which may move: config.asgi:application, the EnvelopeConsumer
`throttles` class attribute, and camera.models.Stream(slug, public, publish_token) in
STREAM_SNIPPET. If any of them breaks, setup raises TargetUnavailable and the harness
skips the workload (or the whole target), printing why.

  prepare  migrate a throw-away SQLite file, create the staff user `bench` (manage.py)
  start    daphne on config.asgi:application with its per-connection throttles raised
           (see ASGI_APP), in-memory channel layer (REDIS_URL unset)
  ready    POST /api/auth/token/ {"username","password"} → JWT "access"
  rooms    POST /api/sessions/ {"title"} (Bearer JWT) → "code"; then per socket
           POST /api/sessions/<code>/join/ {"nickname"} → {"participant_id","token"},
           socket ws://127.0.0.1:<port>/ws/sessions/<code>/?token=<token>
  streams  a public stream row (manage.py shell); viewers /ws/streams/<id>/?token=<JWT>,
           camera /ws/streams/<id>/publish/?token=<the stream's publish token>
  messenger users, conversations and a JWT each (MESSENGER_SNIPPET, manage.py shell;
           sessions_app.messenger.models); devices /ws/messenger/?token=<JWT>
  N1 rooms sessions and guests through REST as above; signed-in users and their JWTs
           (USERS_SNIPPET, manage.py shell), ws://.../ws/sessions/<code>/?token=<JWT>
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from realtime.listening import UVICORN_WS_FLAGS, daphne_flags

from .base import (
    DEVICES_PER_USER,
    HOST,
    ISSUE_WORKLOADS,
    PY,
    ROOT,
    Messenger,
    Room,
    Stream,
    Target,
    TargetUnavailable,
    messenger_devices,
    messenger_plan,
    uvicorn_command,
)
from .http import post_json

MANAGE = ROOT / "manage.py"
# The project's app with its per-connection throttles (ping 10/s, chat.send 100/10 s...)
# raised so they never bind: the code path is the same, the benchmark measures capacity.
# BENCH_OURS_ASGI=config.asgi:application measures the throttled server instead.
ASGI_APP = os.environ.get("BENCH_OURS_ASGI", "bench.targets.ours:application")
RAISED_LIMIT = 10**9
USER, PASSWORD = "bench", "bench-password-0"
USER_SNIPPET = (
    "from django.contrib.auth import get_user_model as g; U=g(); "
    f"u=U.objects.filter(username='{USER}').first() or U(username='{USER}'); "
    f"u.is_staff=True; u.set_password('{PASSWORD}'); u.save()"
)
# Creates (or reuses) a public stream and prints its publish token.
STREAM_SNIPPET = os.environ.get(
    "BENCH_OURS_STREAM_SNIPPET",
    "from camera.models import Stream as S; "
    "s,_=S.objects.get_or_create(slug='{sid}', defaults={{'public': True}}); "
    "s.public=True; s.save(); print(s.publish_token)",
)

# W5: users, direct conversations of the planned pairs and one group, bulk-created with
# the messenger's models, and a JWT per user; prints them as JSON ({plan} is JSON).
MESSENGER_SNIPPET = os.environ.get(
    "BENCH_OURS_MESSENGER_SNIPPET",
    """
import json
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken
from sessions_app.messenger.models import Conversation as C, ConversationMember as M
plan = json.loads({plan!r})
U = get_user_model()
users = U.objects.bulk_create(
    [U(username=f"{{plan['tag']}}u{{i}}", password="!") for i in range(plan["users"])]
)
directs = C.objects.bulk_create(
    [C(kind="direct", direct_key=":".join(map(str, sorted((users[a].pk, users[b].pk)))),
       created_by=users[a]) for a, b in plan["pairs"]]
)
owner = users[plan["group"][0]]
group = C.objects.create(kind="group", title="bench", created_by=owner)
pairs = zip(directs, plan["pairs"])
rows = [M(conversation=c, user=users[i]) for c, p in pairs for i in p]
rows += [M(conversation=group, user=users[i], role="owner" if k == 0 else "member")
         for k, i in enumerate(plan["group"])]
M.objects.bulk_create(rows, batch_size=500)
print(json.dumps({{"tokens": [str(AccessToken.for_user(u)) for u in users],
                  "directs": [str(c.pk) for c in directs], "group": str(group.pk)}}))
""",
)


# N1: signed-in users (they become members on first connect) and a JWT each, as JSON.
USERS_SNIPPET = os.environ.get(
    "BENCH_OURS_USERS_SNIPPET",
    """
import json
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken
U = get_user_model()
names = [f"{tag}u{{i}}" for i in range({n})]
users = U.objects.bulk_create([U(username=name, password="!") for name in names])
print(json.dumps([str(AccessToken.for_user(u)) for u in users]))
""",
)


def lift_throttles() -> None:
    """Raise every per-connection throttle knob (``rates``) so that none binds."""
    from django.conf import settings

    from realtime import conf

    for knob in conf.knobs():
        if knob.kind == "rates":
            rates = conf.get(knob.name)
            lifted = {t: (RAISED_LIMIT, w) for t, (_, w) in rates.items()}
            setattr(settings, knob.name, lifted)
    conf.reload()  # assigned, not overridden: no setting_changed to forget them


def __getattr__(name: str):
    """``application``: config.asgi's own, with throttles lifted, made when the
    server imports it. No wrapper of ours around it: a wrapper's coroutine frame
    would be kept per socket (~0.25 KB) and measured as the project's."""
    if name != "application":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from config.asgi import application

    lift_throttles()
    return application


class Ours(Target):
    """The project's server under daphne, one process, like `make run`."""

    name = "ours"
    workloads = frozenset({"W1", "W2", "W3", "W4", "W5"}) | ISSUE_WORKLOADS
    unset_env = ("REDIS_URL",)  # in-memory channel layer, as in the other targets

    def __init__(self) -> None:
        super().__init__()
        self.jwt = ""
        self.db = Path(tempfile.gettempdir()) / f"bench-ours-{os.getpid()}.sqlite3"

    def env(self) -> dict[str, str]:
        """Throw-away database, production flags, join throttle lifted, quiet logs."""
        return {
            "DATABASE_URL": f"sqlite:///{self.db}",
            "DEBUG": "0",
            "SECRET_KEY": "bench-not-secret-" + "x" * 40,
            "ALLOWED_HOSTS": f"{HOST},localhost",
            "SESSION_JOIN_LIMIT": "1000000",
            "LOG_LEVEL": "WARNING",
            # W5: a 1,000-member group, and tokens minted at set-up that outlive the run
            "MESSENGER_MAX_MEMBERS": "5000",
            "JWT_ACCESS_MINUTES": "600",
        }

    def _manage(self, *args: str, timeout: float = 180.0) -> str:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env()}
        for key in self.unset_env:
            env.pop(key, None)
        try:
            r = subprocess.run(
                [PY, str(MANAGE), *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise TargetUnavailable(f"manage.py {args[0]} timed out") from exc
        if r.returncode:
            tail = (r.stderr or r.stdout)[-400:]
            raise TargetUnavailable(f"manage.py {args[0]} failed: {tail}")
        return r.stdout

    def prepare(self) -> None:
        """Migrate a fresh SQLite file and create the bench user."""
        if not MANAGE.exists():
            raise TargetUnavailable(f"{MANAGE} does not exist (no server yet)")
        self.db.unlink(missing_ok=True)
        self._manage("migrate", "--noinput")
        self._manage("shell", "-c", USER_SNIPPET)

    def command(self, port: int) -> list[str]:
        """daphne, one process, no access log, same backlog as the other targets."""
        # As manage.py serve: the backlog named, no keepalive pings of daphne's own.
        return [PY, "-m", "daphne", "-v", "0", *daphne_flags(HOST, port), ASGI_APP]

    def ready(self) -> None:
        """Log in as the bench user."""
        body = {"username": USER, "password": PASSWORD}
        self.jwt = post_json(f"{self.base_http}/api/auth/token/", body)["access"]

    def session_room(self, n: int) -> Room:
        """Create a session as the bench user, then join n + 1 guests through REST."""
        title = {"title": f"bench {uuid.uuid4().hex[:6]}"}
        code = post_json(f"{self.base_http}/api/sessions/", title, self.jwt)["code"]
        join_url = f"{self.base_http}/api/sessions/{code}/join/"

        def join(i: int) -> str:
            token = post_json(join_url, {"nickname": f"guest{i}"})["token"]
            return f"{self.base_ws}/ws/sessions/{code}/?token={token}"

        with ThreadPoolExecutor(4) as ex:
            urls = list(ex.map(join, range(n + 1)))
        return Room(urls[:n], urls[n])

    def session_rooms(
        self, n_rooms: int, size: int, users_share: float = 0.0
    ) -> list[list[str]]:
        """Sessions created as the bench user; in each, round(size * users_share)
        signed-in users with their own JWT (USERS_SNIPPET) alternate with guests
        joined through REST."""
        n_users = round(size * users_share)
        tokens: list[str] = []
        if n_users:
            tag = f"n1{uuid.uuid4().hex[:6]}"
            snippet = USERS_SNIPPET.format(tag=tag, n=n_rooms * n_users)
            out = self._manage("shell", "-c", snippet).strip().splitlines()
            try:
                tokens = json.loads(out[-1])
            except (IndexError, ValueError) as exc:
                raise TargetUnavailable("USERS_SNIPPET printed no JSON") from exc
        create = f"{self.base_http}/api/sessions/"

        def room(r: int) -> list[str]:
            title = {"title": f"bench {uuid.uuid4().hex[:6]}"}
            code = post_json(create, title, self.jwt)["code"]
            join = f"{self.base_http}/api/sessions/{code}/join/"
            ws = f"{self.base_ws}/ws/sessions/{code}/?token="
            users = [ws + t for t in tokens[r * n_users : (r + 1) * n_users]]
            guests = [
                ws + post_json(join, {"nickname": f"guest{i}"})["token"]
                for i in range(size - n_users)
            ]
            mixed = [u for pair in zip(users, guests, strict=False) for u in pair]
            k = min(len(users), len(guests))
            return mixed + users[k:] + guests[k:]

        with ThreadPoolExecutor(4) as ex:
            return list(ex.map(room, range(n_rooms)))

    def stream(self, n_viewers: int) -> Stream:
        """A public stream; viewers present the bench JWT, the camera its token."""
        sid = f"bench{uuid.uuid4().hex[:6]}"
        out = self._manage("shell", "-c", STREAM_SNIPPET.format(sid=sid)).split()
        if not out:
            raise TargetUnavailable("STREAM_SNIPPET printed no publish token")
        viewer = f"{self.base_ws}/ws/streams/{sid}/?token={self.jwt}"
        publish = f"{self.base_ws}/ws/streams/{sid}/publish/?token={out[-1]}"
        return Stream(publish, [viewer] * n_viewers, viewer)

    def messenger(self, n_users: int, n_directs: int, group_size: int) -> Messenger:
        """Users, conversations and tokens through MESSENGER_SNIPPET (manage.py shell);
        devices at /ws/messenger/?token=<the user's JWT>."""
        pairs, group = messenger_plan(n_users, n_directs, group_size)
        plan = {
            "tag": f"w5{uuid.uuid4().hex[:6]}",
            "users": n_users,
            "pairs": pairs,
            "group": group,
        }
        snippet = MESSENGER_SNIPPET.format(plan=json.dumps(plan))
        out = self._manage("shell", "-c", snippet).strip().splitlines()
        try:
            made = json.loads(out[-1])
        except (IndexError, ValueError) as exc:
            raise TargetUnavailable("MESSENGER_SNIPPET printed no JSON") from exc
        ws = f"{self.base_ws}/ws/messenger/?token="
        urls = [[ws + token] * DEVICES_PER_USER for token in made["tokens"]]
        devices = messenger_devices(urls, pairs, made["directs"], group, made["group"])
        return Messenger(devices, n_users, n_directs, group_size)

    def finish(self) -> None:
        """Delete the throw-away database."""
        self.db.unlink(missing_ok=True)


class OursUvicorn(Ours):
    """The same application and settings under uvicorn (uvloop, httptools)."""

    name = "ours_uvicorn"

    def command(self, port: int) -> list[str]:
        """uvicorn, one process, no access log, like the baseline; as manage.py
        serve, no keepalive pings of uvicorn's own (the heartbeat's) and the
        project's leaner WebSocket protocol (realtime/uvicorn_protocol.py)."""
        return [*uvicorn_command(ASGI_APP, port), *UVICORN_WS_FLAGS]
