"""A trivial raw fan-out server: the ceiling of the load generator, not a contender.

Run: `python -m bench.baselines.trivial_fanout --port 8002`. Same URLs and envelope as
the baseline, but each chat.message is encoded once and written to every transport
without awaiting,
so the client side, not this server, is what limits a W1 run against it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SESSION = re.compile(r"^/ws/sessions/([^/]+)/$")
VIEWER = re.compile(r"^/ws/streams/([^/]+)/$")
PUBLISH = re.compile(r"^/ws/streams/([^/]+)/publish/$")
rooms: dict[str, set] = {}
seqs: dict[str, int] = {}


def frame(opcode: int, payload: bytes) -> bytes:
    """Encode one unmasked server frame."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def text(type_: str, payload: dict) -> bytes:
    """Encode an envelope as a text frame."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return frame(
        1, json.dumps({"type": type_, "payload": payload, "timestamp": ts}).encode()
    )


def unmask(data: bytes, key: bytes) -> bytes:
    """XOR a client payload with its masking key."""
    if key == b"\x00\x00\x00\x00" or not data:
        return data
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


class Conn(asyncio.Protocol):
    """One socket: HTTP upgrade, then frames; rooms are plain sets of these."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.t: asyncio.Transport | None = None
        self.room: str | None = None
        self.publish_to: str | None = None
        self.header: dict = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.t = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        """Leave the room."""
        if self.room:
            rooms.get(self.room, set()).discard(self)

    def data_received(self, data: bytes) -> None:
        """Upgrade first, then parse frames."""
        self.buf += data
        if self.t is not None and self.room is None and self.publish_to is None:
            if not self.upgrade():
                return
        self.parse()

    def upgrade(self) -> bool:
        """Answer the HTTP upgrade and join the room named by the path."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        path = head[0].split(" ")[1].split("?")[0]
        key = next(
            (
                h.split(":", 1)[1].strip()
                for h in head
                if h.lower().startswith("sec-websocket-key")
            ),
            "",
        )
        accept = base64.b64encode(
            hashlib.sha1(key.encode() + GUID, usedforsecurity=False).digest()
        ).decode()
        self.t.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: %s\r\n\r\n" % accept.encode()
        )
        if m := SESSION.match(path):
            self.room = f"s:{m[1]}"
            you = {"participant_id": str(id(self)), "nickname": "x", "role": "guest"}
            self.t.write(
                text(
                    "session.welcome", {"you": you, "last_seq": seqs.get(self.room, 0)}
                )
            )
        elif m := VIEWER.match(path):
            self.room = f"v:{m[1]}"
            self.t.write(text("stream.info", {"stream_id": m[1], "kinds": ["raw"]}))
        elif m := PUBLISH.match(path):
            self.publish_to = f"v:{m[1]}"
            return True
        else:
            self.t.close()
            return False
        rooms.setdefault(self.room, set()).add(self)
        return True

    def parse(self) -> None:
        """Handle every complete client frame in the buffer."""
        buf = self.buf
        while len(buf) >= 6:
            ln = buf[1] & 0x7F
            h = 2
            if ln == 126:
                ln, h = int.from_bytes(buf[2:4], "big"), 4
            elif ln == 127:
                if len(buf) < 10:
                    return
                ln, h = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < h + 4 + ln:
                return
            op = buf[0] & 0x0F
            payload = unmask(bytes(buf[h + 4 : h + 4 + ln]), bytes(buf[h : h + 4]))
            del buf[: h + 4 + ln]
            if op == 8:
                self.t.close()
                return
            if op == 9:
                self.t.write(frame(0xA, payload))
            elif op in (1, 2):
                self.on_message(op, payload)

    def on_message(self, op: int, payload: bytes) -> None:
        """chat.send → one chat.message to all; ping → pong; frames forwarded."""
        if self.publish_to:
            if op == 1:
                self.header = json.loads(payload).get("payload", {})
                return
            head, body = text("frame", self.header), frame(2, payload)
            for c in rooms.get(self.publish_to, ()):
                c.t.write(head)
                c.t.write(body)
            return
        if op != 1:
            return
        msg = json.loads(payload)
        if msg.get("type") == "chat.send":
            seqs[self.room] = seq = seqs.get(self.room, 0) + 1
            out = {
                "seq": seq,
                "message_id": str(seq),
                "participant_id": str(id(self)),
                **msg["payload"],
            }
            data = text("chat.message", out)
            for c in rooms.get(self.room, ()):
                c.t.write(data)
        elif msg.get("type") == "ping":
            self.t.write(text("pong", msg.get("payload", {})))


async def serve(port: int) -> None:
    """Listen on loopback until killed."""
    server = await asyncio.get_running_loop().create_server(
        Conn, "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
