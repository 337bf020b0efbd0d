"""Direct reads on daphne (realtime/daphne_reads.py) against a real daphne, with the
client's bytes written by hand: whole text frames, several in one write, frames cut
across writes, control frames and fragments between them, frames too large or not
UTF-8. The same cases run with the reads on and off (autobahn's own path): the
answers must be the same."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import urllib.request

import pytest

from tests.e2e.client import client_frame
from tests.e2e.server import DaphneServer

pytestmark = pytest.mark.timeout(90)


def ping(n: int, pad: str = "") -> bytes:
    return client_frame(ping_text(n, pad))


def ping_text(n: int, pad: str = "") -> bytes:
    return json.dumps({"type": "ping", "payload": {"n": n, "pad": pad}}).encode()


def fragmented_ping(n: int, at: int) -> tuple[bytes, bytes]:
    """A ping in two frames: text, not final, with its first ``at`` bytes; then the
    final continuation."""
    text = ping_text(n)
    return client_frame(text[:at], fin=False), client_frame(text[at:], opcode=0)


class RawSocket:
    """A WebSocket client that writes whatever bytes it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: DaphneServer, path: str) -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.writer.write(chunk)
            await self.writer.drain()
            await asyncio.sleep(0.05)  # a separate read on the server's side

    async def next_frame(self, timeout: float = 5) -> tuple[int, bytes]:
        """(opcode, payload) of the server's next frame."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await asyncio.wait_for(
            self.reader.readexactly(size), timeout
        )

    async def envelope(self, type_: str, timeout: float = 5) -> dict:
        """The next text frame of ``type_`` (the server's own pings skipped)."""
        while True:
            opcode, payload = await self.next_frame(timeout)
            assert opcode == 1, (opcode, payload)
            got = json.loads(payload)
            if got["type"] == type_:
                return got
            assert got["type"] == "ping", got

    async def until_dropped(self, timeout: float = 5) -> list:
        """Read until the server ends the connection (autobahn fails a connection by
        dropping it): the ``n`` of every pong that came first."""
        answered = []
        try:
            while True:
                opcode, payload = await self.next_frame(timeout)
                if opcode == 1 and json.loads(payload)["type"] == "pong":
                    answered.append(json.loads(payload)["payload"]["n"])
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return answered

    async def pongs(self, count: int) -> list:
        return [(await self.envelope("pong"))["payload"]["n"] for _ in range(count)]

    def close(self) -> None:
        self.writer.close()


@pytest.fixture(scope="module", params=["1", "0"], ids=["direct", "autobahn"])
def server(request, tmp_path_factory):
    env = {"REALTIME_DIRECT_READS": request.param, "REALTIME_MAX_TEXT_BYTES": "200000"}
    workdir = tmp_path_factory.mktemp(f"e2e-daphne-reads-{request.param}")
    with DaphneServer(workdir, env=env) as srv:
        srv.alice = srv.create_user("alice")
        yield srv


def direct_reads(server) -> int:
    """``realtime_direct_reads_total``: the frames read past autobahn."""
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as reply:
        text = reply.read().decode()
    return int(float(re.search(r"^realtime_direct_reads_total (\S+)$", text, re.M)[1]))


def direct(server) -> bool:
    return server.env["REALTIME_DIRECT_READS"] == "1"


async def echo(server) -> RawSocket:
    sock = await RawSocket.open(server, f"/ws/echo/?token={server.alice['access']}")
    await sock.envelope("echo.ready")
    return sock


async def test_frames_in_one_write_and_cut_across_writes_arrive_in_order(server):
    sock = await echo(server)
    try:
        before = direct_reads(server)
        await sock.send(ping(1) + ping(2) + ping(3))
        assert await sock.pongs(3) == [1, 2, 3]
        assert direct_reads(server) - before == (3 if direct(server) else 0)
        cut = ping(4) + ping(5, pad="x" * 300)  # a 16-bit length too
        await sock.send(cut[:3], cut[3:40], cut[40:])
        assert await sock.pongs(2) == [4, 5]
    finally:
        sock.close()


async def test_control_frames_and_fragments_between_text_frames(server):
    sock = await echo(server)
    try:
        fragments = b"".join(fragmented_ping(7, at=10))
        websocket_ping = client_frame(b"are you there", opcode=9)
        await sock.send(ping(6) + websocket_ping + fragments + ping(8))
        # autobahn answers the protocol's ping as it reads it, so before or between
        # the application's replies.
        frames = [await sock.next_frame() for _ in range(4)]
        assert (10, b"are you there") in frames
        answered = [json.loads(p)["payload"]["n"] for op, p in frames if op == 1]
        assert answered == [6, 7, 8]
    finally:
        sock.close()


async def test_a_large_frame_after_small_ones_is_read_whole(server):
    sock = await echo(server)
    try:
        await sock.send(ping(1) + ping(2, pad="y" * 70_000))  # a 64-bit length
        assert await sock.pongs(2) == [1, 2]
    finally:
        sock.close()


@pytest.mark.parametrize(
    "bad",
    [
        client_frame(b'{"type": "\xff"}'),  # not UTF-8
        struct.pack("!BB", 0x81, 2) + b"{}",  # not masked
        b"\x81\xfe\x00\x02" + client_frame(b"{}")[2:],  # 2 bytes in a 16-bit length
    ],
    ids=["invalid-utf8", "unmasked", "non-minimal-length"],
)
async def test_a_bad_frame_ends_the_connection_and_nothing_after_it_is_read(
    server, bad
):
    sock = await echo(server)
    try:
        await sock.send(ping(1) + bad + ping(2))
        assert await sock.until_dropped() in ([], [1])
    finally:
        sock.close()


async def test_the_connection_goes_on_after_a_fragmented_message(server):
    """autobahn leaves nothing buffered: the next read is a direct one again."""
    sock = await echo(server)
    try:
        first, rest = fragmented_ping(1, at=5)
        await sock.send(first)
        await sock.send(rest)
        before = direct_reads(server)
        await sock.send(ping(2))
        assert await sock.pongs(2) == [1, 2]
        assert direct_reads(server) - before == (1 if direct(server) else 0)
    finally:
        sock.close()
