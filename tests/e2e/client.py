"""Small helpers for end-to-end tests that talk to a real server with ``websockets``."""

from __future__ import annotations

import asyncio
import json

from websockets.exceptions import ConnectionClosed


async def close_code(ws, timeout: float = 5) -> int:
    """Read until the server closes; its close code (1006 when there was none)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006


async def frame(
    ws, type_: str | None = None, timeout: float = 5, skip=("ping",)
) -> dict:
    """The next frame; with ``type_``, the next of that type, skipping only ``skip``."""
    while True:
        got = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if type_ is None or got["type"] == type_:
            return got
        assert got["type"] in skip, got
