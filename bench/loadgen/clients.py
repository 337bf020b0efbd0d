"""Client roles: subscribers, sender, pingers, camera viewers and the camera."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from array import array

from .wsclient import LAST_RX, WSClient, encode_frame, split_url

MARK = (
    b"LGT"  # "LGT" + 20-digit time_ns: the sender's wall clock, read back by receivers
)
JPEG_MAGIC = b"\xff\xd8"
SUBSCRIBE = b'{"type":"stream.subscribe","payload":{"kinds":["raw"],"poses":false}}'
time_ns = time.time_ns


def stamp() -> bytes:
    """Return the latency marker for now."""
    return b"LGT%020d" % time_ns()


class Stats:
    """Per-process receive statistics shared by all clients of one role."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything measured so far."""
        self.lat = array("q")
        self.count = 0
        self.rate_limited = 0
        self.first_ns = 0
        self.last_ns = 0

    def add(self, sent_ns: int) -> None:
        """Record one delivery stamped sent_ns."""
        now = time_ns()
        self.lat.append(now - sent_ns)
        self.count += 1
        self.last_ns = now
        if not self.first_ns:
            self.first_ns = now


class AppClient(WSClient):
    """A client that answers the server's heartbeat (§4: ping → pong)."""

    def __init__(self, hostport: str, path: str, stats: Stats) -> None:
        super().__init__(hostport, path)
        self.stats = stats
        self.count = 0

    def on_other(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Answer a server `ping`, count RATE_LIMITED errors, ignore the rest."""
        if op != 1:
            return
        if buf.find(b"RATE_LIMITED", start, end) >= 0:
            self.stats.rate_limited += 1
            self.on_rate_limited(bytes(buf[start:end]))
            return
        if buf.find(b'"ping"', start, min(end, start + 40)) < 0:
            return
        try:
            msg = json.loads(bytes(buf[start:end]))
        except ValueError:
            return
        if msg.get("type") == "ping":
            out = {"type": "pong", "payload": msg.get("payload", {})}
            self.send_text(json.dumps(out).encode())

    def on_rate_limited(self, frame: bytes) -> None:
        """Hook for clients that must back off."""


class Subscriber(AppClient):
    """A room member that time-stamps every chat.message carrying the marker."""

    def data_received(self, data: bytes) -> None:
        """Fast path for whole text frames at a boundary; the rest goes generic."""
        if self.handshaking or self.buf or not self.got_first:
            super().data_received(data)
            return
        now = time_ns()
        LAST_RX[0] = now
        n = len(data)
        i = got = 0
        find = data.find
        lat = self.stats.lat
        while n - i >= 2:
            ln = data[i + 1] & 0x7F
            if data[i] != 0x81 or ln == 127:
                break
            if ln == 126:
                if n - i < 4:
                    break
                ln = (data[i + 2] << 8) | data[i + 3]
                start = i + 4
            else:
                start = i + 2
            end = start + ln
            if end > n:
                break
            j = find(MARK, start, end)
            if j >= 0:
                got += 1
                lat.append(now - int(data[j + 3 : j + 23]))
            else:
                self.on_other(1, data, start, end)
            i = end
        if got:
            self.count += got
            st = self.stats
            st.count += got
            st.last_ns = now
            if not st.first_ns:
                st.first_ns = now
        if i < n:
            self.buf += data[i:]
            self._parse()

    def on_message(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Count a marked chat.message and record its end-to-end latency."""
        i = buf.find(MARK, start, end)
        if i < 0:
            self.on_other(op, buf, start, end)
            return
        self.count += 1
        self.stats.add(int(buf[i + 3 : i + 23]))


class Sender(Subscriber):
    """The W1 sender; also a member, so it counts its own echoes for the window."""

    def __init__(self, hostport: str, path: str, stats: Stats) -> None:
        super().__init__(hostport, path, stats)
        self.sent = 0
        self.echo = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        """The generic parser (echoes must reach on_message)."""
        WSClient.data_received(self, data)

    def on_message(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Count an echo of our own message and wake the window."""
        i = buf.find(MARK, start, end)
        if i < 0:
            self.on_other(op, buf, start, end)
            return
        self.count += 1
        self.echo.set()

    def send_chat(self, pad: bytes) -> None:
        """Send one chat.send stamped with the wall clock (its client_id is unique)."""
        self.sent += 1
        mark = stamp()
        self.send_text(
            b'{"type":"chat.send","payload":{"content":"%s:%d%s","client_id":"%s"}}'
            % (mark, self.sent, pad, mark)
        )


class TaggedSender(Sender):
    """One of several senders in a room (N3, N4): its messages carry its own tag, so
    only their echoes close its window; other senders' messages are ignored."""

    def __init__(self, hostport: str, path: str, stats: Stats) -> None:
        super().__init__(hostport, path, stats)
        self.tag = b"~s~"

    def on_message(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Count an echo carrying our tag and wake the window."""
        if buf.find(self.tag, start, end) >= 0:
            self.count += 1
            self.echo.set()
        elif buf.find(MARK, start, end) < 0:
            self.on_other(op, buf, start, end)

    def send_chat(self, pad: bytes) -> None:
        """Send one chat.send stamped with the wall clock and tagged."""
        self.sent += 1
        mark = stamp()
        self.send_text(
            b'{"type":"chat.send","payload":{"content":"%s:%d%s%s","client_id":"%s"}}'
            % (mark, self.sent, self.tag, pad, mark)
        )


class Pinger(AppClient):
    """A closed-loop client: ping, wait for the pong with the same payload, repeat."""

    def __init__(self, hostport: str, path: str, stats: Stats) -> None:
        super().__init__(hostport, path, stats)
        self.deadline = 0.0
        self.done: asyncio.Future | None = None

    def start(self, deadline: float) -> asyncio.Future:
        """Run until the monotonic deadline; the returned future ends with the loop."""
        self.deadline = deadline
        self.done = asyncio.get_running_loop().create_future()
        self.ping()
        return self.done

    def ping(self) -> None:
        """Send one ping envelope with a stamped payload."""
        self.send_text(
            b'{"type":"ping","payload":{"m":"%s","n":%d}}' % (stamp(), self.count)
        )

    def on_message(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Record the round trip and send the next ping."""
        i = buf.find(MARK, start, end)
        if i < 0:
            self.on_other(op, buf, start, end)
            return
        self.count += 1
        self.stats.add(int(buf[i + 3 : i + 23]))
        if time.monotonic() < self.deadline:
            self.ping()
        elif self.done and not self.done.done():
            self.done.set_result(self.count)

    def on_rate_limited(self, frame: bytes) -> None:
        """Throttled: ping again after retry_after (within the deadline)."""
        try:
            wait = float(json.loads(frame)["payload"].get("retry_after") or 0.1)
        except (ValueError, KeyError, TypeError, AttributeError):
            wait = 0.1
        if time.monotonic() + wait < self.deadline:
            asyncio.get_running_loop().call_later(wait, self.ping)
        elif self.done and not self.done.done():
            self.done.set_result(self.count)

    def connection_lost(self, exc: Exception | None) -> None:
        """End the loop too."""
        super().connection_lost(exc)
        if self.done and not self.done.done():
            self.done.set_result(self.count)


class Viewer(AppClient):
    """A camera viewer: subscribes, counts JPEGs, measures latency, acks every frame."""

    def __init__(self, hostport: str, path: str, stats: Stats) -> None:
        super().__init__(hostport, path, stats)
        self.seq = None

    def subscribe(self) -> None:
        """Send stream.subscribe for raw frames (the baseline ignores it)."""
        self.send_text(SUBSCRIBE)

    def on_message(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Keep the seq of a `frame` header; count, time and ack the binary JPEG."""
        if op == 2:
            self.count += 1
            if buf[start : start + 2] == JPEG_MAGIC:
                self.stats.add(int.from_bytes(buf[start + 2 : start + 10], "big"))
            else:
                self.stats.count += 1
            if self.seq is not None:
                self.send_text(b'{"type":"frame.ack","payload":{"seq":%d}}' % self.seq)
            return
        if buf.find(b'"frame"', start, min(end, start + 40)) >= 0:
            try:
                self.seq = int(json.loads(bytes(buf[start:end]))["payload"]["seq"])
            except (ValueError, KeyError, TypeError):
                self.seq = None
            return
        self.on_other(op, buf, start, end)


class Publisher(AppClient):
    """The camera: a `frame` envelope then the binary JPEG, at a fixed rate."""

    def publish(self, seq: int, jpeg_tail: bytes) -> int:
        """Send frame seq: FF D8, the send time (8 bytes), jpeg_tail (ends FF D9)."""
        jpeg = JPEG_MAGIC + time_ns().to_bytes(8, "big") + jpeg_tail
        head = {
            "seq": seq,
            "kind": "raw",
            "captured_at": time.time(),
            "bytes": len(jpeg),
        }
        self.send_text(json.dumps({"type": "frame", "payload": head}).encode())
        self.send_binary(jpeg)
        return self.transport.get_write_buffer_size()

    def on_message(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Acks or errors from the server are not used."""
        self.on_other(op, buf, start, end)


async def open_stalled(
    url: str, rcvbuf: int = 4096, timeout: float = 10.0
) -> socket.socket:
    """Complete a WebSocket handshake on a socket that will never be read again."""
    host, port, path = split_url(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    req = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: c3RhbGxlZC12aWV3ZXIhIQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n\r\n"
    )
    await loop.sock_sendall(sock, req.encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 16384:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), timeout)
        if not chunk:
            raise ConnectionError("stalled viewer: connection closed during handshake")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0] + b" ":
        raise ConnectionError(f"stalled viewer refused: {head[:80]!r}")
    await loop.sock_sendall(sock, encode_frame(1, SUBSCRIBE))
    return sock


SUBSCRIBED = b'"conversation.subscribed"'
ERROR_TYPE = b'"error"'


class Device(Subscriber):
    """A messenger device (W5): subscribes to its conversations, counts every marked
    `message.new` (its own echoes too), and sends in the phases it is a sender of.

    In a phase only the phase's senders send, each in its own conversation, so
    everything marked that reaches a sender is its own echo: `count` (reset per
    phase) is the echoes that close its window.
    """

    def __init__(self, hostport: str, path: str, stats: Stats) -> None:
        super().__init__(hostport, path, stats)
        self.sends: dict[str, bytes] = {}
        self.sent = 0
        self.echo = asyncio.Event()
        self.want = 0
        self.subscribed: asyncio.Future | None = None
        self.errors: list[str] = []

    def subscribe(self, conversation_ids: list[str]) -> asyncio.Future:
        """Send conversation.subscribe for each; the future ends with the last reply."""
        self.subscribed = asyncio.get_running_loop().create_future()
        self.want = len(conversation_ids)
        for i, cid in enumerate(conversation_ids):
            self.send_text(
                b'{"type":"conversation.subscribe","request_id":"s%d",'
                b'"payload":{"conversation_id":"%s"}}' % (i, cid.encode())
            )
        if not self.want:
            self.subscribed.set_result(0)
        return self.subscribed

    def send_message(self, phase: str) -> None:
        """One message.send in the phase's conversation, stamped like W1's chat."""
        self.sent += 1
        mark = stamp()
        self.send_text(
            b'{"type":"message.send","payload":{"conversation_id":"%s",'
            b'"content":"%s:%d","client_id":"%s:%d"}}'
            % (self.sends[phase], mark, self.sent, mark, self.sent)
        )

    def data_received(self, data: bytes) -> None:
        """Count as a Subscriber; wake the window when something marked arrived."""
        before = self.count
        super().data_received(data)
        if self.count != before:
            self.echo.set()

    def on_other(self, op: int, buf: bytearray, start: int, end: int) -> None:
        """Subscription replies and errors; the rest as any app client."""
        if op == 1 and buf.find(SUBSCRIBED, start, end) >= 0:
            self.want -= 1
            if self.want <= 0 and self.subscribed and not self.subscribed.done():
                self.subscribed.set_result(0)
            return
        if op == 1 and buf.find(ERROR_TYPE, start, min(end, start + 40)) >= 0:
            if len(self.errors) < 5:
                self.errors.append(bytes(buf[start:end])[:300].decode(errors="replace"))
            if self.subscribed and not self.subscribed.done():
                why = f"subscribe failed: {self.errors[-1] if self.errors else ''}"
                self.subscribed.set_exception(ConnectionError(why))
                self.subscribed.exception()  # mark retrieved
        super().on_other(op, buf, start, end)
