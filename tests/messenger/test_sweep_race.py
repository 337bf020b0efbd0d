"""The presence sweep reads Redis with an await: a contact who comes on while it
reads must not be called off by the stale answer."""

from __future__ import annotations

import asyncio

import pytest

from sessions_app.messenger import presence

pytestmark = pytest.mark.timeout(10)


class Socket:
    def __init__(self, contacts: set[int]) -> None:
        self.online_contacts = set(contacts)
        self.told: list[tuple[int, bool]] = []
        self.tasks: list[asyncio.Task] = []

    async def contact_changed(self, user_id: int, online: bool, text: str) -> None:
        self.told.append((user_id, online))

    def spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task


async def sweep(monkeypatch, sweeper, read) -> Socket:
    socket = Socket({7, 8})
    sweeper.sockets.add(socket)
    monkeypatch.setattr(presence, "online_among", read)
    await asyncio.wait_for(sweeper.sweep(), 5)
    await asyncio.wait_for(asyncio.gather(*socket.tasks), 5)
    if sweeper.timer is not None:
        sweeper.timer.cancel()
    return socket


async def test_a_contact_gone_quiet_is_called_off(monkeypatch):
    async def read(users):
        return {8}

    socket = await sweep(monkeypatch, presence.Sweeper(), read)
    assert socket.told == [(7, False)]


async def test_a_contact_who_came_on_while_the_sweep_read_is_left_on(monkeypatch):
    sweeper = presence.Sweeper()

    async def read(users):
        await asyncio.sleep(0)
        sweeper.told_online(7)  # user.online arrives meanwhile
        return {8}  # the read began before 7's new entry was written

    socket = await sweep(monkeypatch, sweeper, read)
    assert socket.told == []
    assert 7 in sweeper.came_on  # kept for a sweep that overlaps this one
