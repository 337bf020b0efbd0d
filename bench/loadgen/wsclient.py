"""A minimal asyncio WebSocket client, built to receive many small frames cheaply."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Clients must mask; a zero key keeps the payload unchanged, so masking costs nothing.
ZERO_MASK = b"\x00\x00\x00\x00"
MAX_HEADER = 16384
# Wall-clock ns of the last data received by any client of this process. A list, not a
# class attribute: writing a class attribute on every read would flush the type cache.
LAST_RX = [0]


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """Encode one final client frame (masked with the zero key)."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + ZERO_MASK + payload


def split_url(url: str) -> tuple[str, int, str]:
    """Return (host, port, path+query) of a ws:// URL; refuse anything but loopback."""
    u = urlsplit(url)
    if u.scheme != "ws" or u.hostname not in LOOPBACK:
        raise ValueError(f"only ws:// loopback URLs may be targeted, got {url!r}")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return u.hostname, u.port or 80, path


class WSClient(asyncio.Protocol):
    """Handshake, frame parsing, pings answered; subclasses override on_message."""

    def __init__(self, hostport: str, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.hostport = hostport
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.handshaking = True
        self.key = base64.b64encode(os.urandom(16))
        self.opened: asyncio.Future = loop.create_future()
        self.first: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        self.close_code: int | None = None
        self.frag: tuple[int, bytearray] | None = None
        self.got_first = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        self.transport = transport  # type: ignore[assignment]
        req = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.hostport}\r\n"
            "Upgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://{self.hostport}\r\n\r\n"
        )
        transport.write(req.encode())  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        """Resolve every pending future."""
        err = ConnectionError(f"connection lost (close code {self.close_code})")
        for fut in (self.opened, self.first):
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def data_received(self, data: bytes) -> None:
        """Buffer bytes, finish the handshake, then parse every complete frame."""
        LAST_RX[0] = time.time_ns()
        buf = self.buf
        buf += data
        if self.handshaking and not self._handshake():
            return
        self._parse()

    def _handshake(self) -> bool:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER:
                self._fail("oversized handshake response")
            return False
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        status = head.split("\r\n", 1)[0]
        if " 101 " not in status + " ":
            self._fail(f"handshake refused: {status}")
            return False
        want = base64.b64encode(
            hashlib.sha1(self.key + GUID, usedforsecurity=False).digest()
        ).decode()
        if want not in head:
            self._fail("bad Sec-WebSocket-Accept")
            return False
        self.handshaking = False
        self.opened.set_result(True)
        return True

    def _fail(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(why))
            self.opened.exception()
        if self.transport:
            self.transport.abort()

    def _parse(self) -> None:
        buf = self.buf
        n = len(buf)
        i = 0
        while n - i >= 2:
            b0 = buf[i]
            ln = buf[i + 1] & 0x7F
            h = 2
            if ln == 126:
                if n - i < 4:
                    break
                ln = (buf[i + 2] << 8) | buf[i + 3]
                h = 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln = int.from_bytes(buf[i + 2 : i + 10], "big")
                h = 10
            start = i + h
            end = start + ln
            if end > n:
                break
            op = b0 & 0x0F
            if op == 1 or op == 2:
                if b0 & 0x80:
                    self._deliver(op, buf, start, end)
                else:
                    self.frag = (op, bytearray(buf[start:end]))
            elif op == 0 and self.frag is not None:
                self.frag[1].extend(buf[start:end])
                if b0 & 0x80:
                    fop, data = self.frag
                    self.frag = None
                    self._deliver(fop, data, 0, len(data))
            elif op == 9:
                self.transport.write(encode_frame(0xA, bytes(buf[start:end])))
            elif op == 8:
                self.close_code = (
                    int.from_bytes(buf[start : start + 2], "big") if ln >= 2 else 1005
                )
                self.close()
            i = end
        if i:
            del buf[:i]

    def _deliver(self, op: int, buf: bytearray, start: int, end: int) -> None:
        if not self.got_first:
            self.got_first = True
            if not self.first.done():
                self.first.set_result(bytes(buf[start:end]))
        self.on_message(op, buf, start, end)

    def on_message(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Handle one data message held in buf[start:end] (op 1 text, 2 binary)."""

    def send_text(self, data: bytes) -> None:
        """Send one text frame (bytes already UTF-8)."""
        if self.transport and not self.transport.is_closing():
            self.transport.write(encode_frame(1, data))

    def send_binary(self, data: bytes) -> None:
        """Send one binary frame."""
        if self.transport and not self.transport.is_closing():
            self.transport.write(encode_frame(2, data))

    def close(self) -> None:
        """Send a normal close frame and close the transport (no wait)."""
        if self.transport and not self.transport.is_closing():
            self.transport.write(encode_frame(8, b"\x03\xe8"))
            self.transport.close()


async def connect(
    url: str, factory, timeout: float = 15.0, wait_first: bool = False, **kw
):
    """Open a `factory` client on url; optionally wait for its first message."""
    host, port, path = split_url(url)
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(
            lambda: factory(f"{host}:{port}", path, **kw), host, port
        ),
        timeout,
    )
    try:
        await asyncio.wait_for(asyncio.shield(proto.opened), timeout)
        if wait_first:
            await asyncio.wait_for(asyncio.shield(proto.first), timeout)
    except BaseException:
        proto.transport.abort()
        raise
    return proto
