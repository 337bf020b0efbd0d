"""Direct reads on daphne: a client's small text frames reach daphne without autobahn's
frame machine.

autobahn reads every frame through a general state machine: a header object, a masker
made per frame, frame-begin, frame-data and frame-end hooks, a UTF-8 validator reset
and fed, message-begin and message-end hooks, and a debug log line whose arguments
are formatted whether or not it is written. Profiled on bench N2 (round trips on
daphne) that is about a quarter of the server's time per frame. Nearly every frame a
client sends here is one final, masked text frame under 64 KiB that arrives whole: for
those, ``DirectReader`` unmasks the payload (websockets' C ``apply_mask``), checks its
UTF-8 as autobahn would (a strict decode: no surrogates, no overlongs) and hands it to
daphne's own ``onMessage``, which queues it for the application exactly as before.

Anything else goes to autobahn unchanged, in order: a fragmented or binary message, a
control frame (ping, pong, close), a frame split across reads or over the size
limits, bytes left over from an earlier read, invalid UTF-8 (autobahn fails the
connection, as it always did: daphne leaves autobahn's ``failByDrop`` on, so it is
dropped), compression, unmasking turned off, autobahn's own frame or octet logging,
any state but open. A read that starts with fast frames and ends with
another kind gives autobahn the rest after the fast ones. The check is on the exact
classes and attributes of the daphne and autobahn versions in requirements.txt;
anything else keeps autobahn's path, and ``REALTIME_DIRECT_READS=0`` turns it off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from websockets.frames import apply_mask

from realtime.direct import AUTOBAHN_OPEN, daphne_protocol
from realtime.metrics import direct_reads

FINAL_TEXT = 0x81  # FIN, no RSV bits, opcode 1 (RFC 6455 §5.2)
MASKED = 0x80
MAX_FAST_PAYLOAD = 65535  # 16-bit lengths: larger frames are rare and autobahn's

_ATTRIBUTES = (
    "state",
    "data",
    "current_frame",
    "inside_message",
    "_perMessageCompress",
    "applyMask",
    "logOctets",
    "logFrames",
    "trackedTimings",
    "maxFramePayloadSize",
    "maxMessagePayloadSize",
    "autoPingTimeoutCall",
    "autoPingRestartOnAnyTraffic",
    "_cancelAutoPingTimeoutCall",
    "trafficStats",
    "onMessage",
    "dataReceived",
)


def split_text_frames(data: bytes, limit: int) -> tuple[list[bytes], int]:
    """The whole, final, masked text frames at the start of ``data`` (each payload
    at most ``limit`` bytes and valid UTF-8): their unmasked payloads, and where
    they end."""
    texts: list[bytes] = []
    pos = 0
    end = len(data)
    while end - pos >= 6:  # the shortest frame: 2 bytes of header, 4 of mask
        if data[pos] != FINAL_TEXT:
            break
        size = data[pos + 1]
        if not size & MASKED:
            break  # an unmasked client frame: autobahn fails the connection
        size &= 0x7F
        head = pos + 2
        if size == 126:
            size = (data[head] << 8) | data[head + 1]
            if size < 126:
                break  # not the minimal length encoding: autobahn's to refuse
            head += 2
        elif size == 127:
            break
        stop = head + 4 + size
        if stop > end or size > limit:
            break
        payload = apply_mask(data[head + 4 : stop], data[head : head + 4])
        try:
            payload.decode()
        except UnicodeDecodeError:
            break  # autobahn fails the connection
        texts.append(payload)
        pos = stop
    return texts, pos


class DirectReader:
    """A daphne socket's ``dataReceived``: fast frames first, the rest autobahn's."""

    __slots__ = ("protocol", "autobahn")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.autobahn: Callable[[bytes], None] = protocol.dataReceived

    def __call__(self, data: bytes) -> None:
        protocol = self.protocol
        if (
            protocol.state != AUTOBAHN_OPEN
            or protocol.data
            or protocol.current_frame is not None
            or protocol.inside_message
            or protocol._perMessageCompress is not None
            or not protocol.applyMask  # autobahn would hand the payload on masked
            or protocol.logOctets
            or protocol.logFrames
            or protocol.trackedTimings
        ):
            self.autobahn(data)
            return
        texts, used = split_text_frames(data, _limit(protocol))
        if texts:
            stats = protocol.trafficStats
            stats.incomingOctetsWireLevel += used
            payload_bytes = sum(map(len, texts))
            stats.incomingOctetsWebSocketLevel += payload_bytes
            stats.incomingOctetsAppLevel += payload_bytes
            stats.incomingWebSocketFrames += len(texts)
            stats.incomingWebSocketMessages += len(texts)
            direct_reads.value += len(texts)
            if protocol.autoPingTimeoutCall and protocol.autoPingRestartOnAnyTraffic:
                protocol._cancelAutoPingTimeoutCall()
            on_message = protocol.onMessage
            for payload in texts:
                # daphne's own hand-over (muting, its ping clock, the queue)
                on_message(payload, False)
        if used < len(data):
            self.autobahn(data[used:] if used else data)


def _limit(protocol: Any) -> int:
    limit = MAX_FAST_PAYLOAD
    for own in (protocol.maxFramePayloadSize, protocol.maxMessagePayloadSize):
        if own and own < limit:
            limit = own
    return limit


def read_directly(send: Callable) -> bool:
    """Give the daphne connection behind ``send`` a ``DirectReader``; ``False`` for
    any other server, or a daphne or autobahn unlike the ones this was written for."""
    protocol = daphne_protocol(send)
    if protocol is None or not all(hasattr(protocol, name) for name in _ATTRIBUTES):
        return False
    if isinstance(protocol.dataReceived, DirectReader):
        return True
    protocol.dataReceived = DirectReader(protocol)
    return True
