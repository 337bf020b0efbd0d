"""Shared fixtures: users and tokens, socket connections, a clean cache and layer."""

from __future__ import annotations

import json

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from rest_framework_simplejwt.tokens import AccessToken

from realtime import clock, localcache, presence
from realtime.clock import ManualClock

ORIGIN = (b"origin", b"http://localhost:8000")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # PBKDF2's deliberate slowness buys nothing in tests and costs seconds per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clean_state():
    """Each test starts with empty caches, presence store and channel layer."""
    cache.clear()
    localcache.clear_all()  # the per-process caches of rows a rollback removed
    presence.reset_store()
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def fake_clock():
    """A ``ManualClock`` installed as the toolkit's clock for the test (``advance``)."""
    fake = ManualClock()
    with clock.installed(fake):
        yield fake


@pytest.fixture
def make_user(django_user_model):
    def make(username: str = "alice", **extra):
        return django_user_model.objects.create_user(
            username=username, password="pw-Secret-123", **extra
        )

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def staff(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


def access_token(user) -> str:
    return str(AccessToken.for_user(user))


@pytest.fixture
def token(user) -> str:
    return access_token(user)


def communicator(
    path: str,
    *,
    token: str | None = None,
    bearer: str | None = None,
    origin: bytes | None = ORIGIN[1],
) -> WebsocketCommunicator:
    from config.asgi import application

    headers = []
    if origin is not None:
        headers.append((b"origin", origin))
    if bearer is not None:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    if token is not None:
        path += ("&" if "?" in path else "?") + f"token={token}"
    return WebsocketCommunicator(application, path, headers=headers)


async def recv(comm: WebsocketCommunicator, timeout: float = 3) -> dict:
    """The next text frame, parsed."""
    return json.loads(await comm.receive_from(timeout=timeout))


async def recv_type(
    comm: WebsocketCommunicator, type_: str, timeout: float = 3, skip=("ping",)
) -> dict:
    """The next frame of ``type_``, skipping only the types in ``skip``."""
    while True:
        frame = await recv(comm, timeout)
        if frame["type"] == type_:
            return frame
        assert frame["type"] in skip, f"expected {type_}, got {frame}"


async def send(comm: WebsocketCommunicator, type_: str, payload=None, **extra) -> None:
    await comm.send_to(
        text_data=json.dumps({"type": type_, "payload": payload or {}, **extra})
    )


async def closed_with(comm: WebsocketCommunicator, timeout: float = 3) -> int:
    """Wait for the server's close and return its code."""
    while True:
        output = await comm.receive_output(timeout)
        if output["type"] == "websocket.close":
            return output.get("code", 1000)
