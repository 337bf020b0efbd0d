"""Small helpers for end-to-end tests that talk to a real server with ``websockets``."""

from __future__ import annotations

import asyncio
import json
import struct

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


MASK = b"\x37\xfa\x21\x3d"


def client_frame(payload: bytes, *, opcode: int = 1, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 §5.2)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return header + MASK + masked
