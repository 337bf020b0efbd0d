"""Direct reads on daphne (realtime/daphne_reads.py): which frames are read past
autobahn, and that everything else reaches autobahn whole and in order. A real daphne
is driven by tests/e2e/test_daphne_reads_e2e.py."""

from __future__ import annotations

import functools
import struct
from types import SimpleNamespace

import pytest

from realtime import metrics
from realtime.daphne_reads import DirectReader, read_directly, split_text_frames
from tests.e2e.client import client_frame


def text(payload: str) -> bytes:
    return client_frame(payload.encode())


def test_whole_text_frames_are_split_and_unmasked():
    data = text("one") + text("é" * 100) + text("")
    assert split_text_frames(data, 65535) == (
        [b"one", ("é" * 100).encode(), b""],
        len(data),
    )


@pytest.mark.parametrize(
    "tail",
    [
        client_frame(b"bin", opcode=2),
        client_frame(b"frag", fin=False),
        client_frame(b"", opcode=9),  # a ping
        client_frame(b"x" * 70_000),  # a 64-bit length
        text("cut")[:-1],
        text("x" * 300)[:7],  # a 16-bit length, its mask cut
        struct.pack("!BB", 0x81, 2) + b"{}",  # unmasked
        b"\x81\xfe\x00\x02" + text("{}")[2:],  # not the minimal length encoding
        client_frame(b"\xff\xfe"),  # not UTF-8
        client_frame("\ud800".encode("utf-8", "surrogatepass")),  # a lone surrogate
        b"\xc1\x82" + text("{}")[2:],  # an RSV bit
    ],
)
def test_anything_else_stops_the_split_where_it_starts(tail):
    head = text("a") + text("b")
    assert split_text_frames(head + tail + text("c"), 65535) == (
        [b"a", b"b"],
        len(head),
    )


def test_a_frame_over_the_limit_is_autobahns():
    data = text("x" * 10) + text("x" * 11)
    assert split_text_frames(data, 10) == ([b"x" * 10], len(text("x" * 10)))


class FakeAutobahn:
    """The attributes of daphne's protocol that the reader reads (names as in
    autobahn), with autobahn's ``dataReceived`` recording what it is given."""

    def __init__(self, **attrs):
        self.state = 3
        self.data = b""
        self.current_frame = None
        self.inside_message = False
        self._perMessageCompress = None
        self.applyMask = True
        self.logOctets = self.logFrames = False
        self.trackedTimings = None
        self.maxFramePayloadSize = self.maxMessagePayloadSize = 0
        self.autoPingTimeoutCall = None
        self.autoPingRestartOnAnyTraffic = True
        self.trafficStats = SimpleNamespace(
            incomingOctetsWireLevel=0,
            incomingOctetsWebSocketLevel=0,
            incomingOctetsAppLevel=0,
            incomingWebSocketFrames=0,
            incomingWebSocketMessages=0,
        )
        self.messages, self.given, self.cancelled = [], [], 0
        self.__dict__.update(attrs)

    def onMessage(self, payload, is_binary):
        self.messages.append((payload, is_binary))

    def dataReceived(self, data):
        self.given.append(data)

    def _cancelAutoPingTimeoutCall(self):
        self.cancelled += 1


def test_fast_frames_go_to_daphne_and_the_rest_to_autobahn_after_them():
    protocol = FakeAutobahn(autoPingTimeoutCall=object())
    reader = DirectReader(protocol)
    before = metrics.direct_reads.value
    rest = client_frame(b"", opcode=9) + text("later")
    reader(text("a") + text("b") + rest)
    assert protocol.messages == [(b"a", False), (b"b", False)]
    assert protocol.given == [rest]
    assert protocol.cancelled == 1  # traffic restarts autobahn's ping timeout
    stats = protocol.trafficStats
    assert stats.incomingWebSocketFrames == stats.incomingWebSocketMessages == 2
    assert stats.incomingOctetsWireLevel == len(text("a") + text("b"))
    assert metrics.direct_reads.value - before == 2


def test_a_read_with_no_fast_frame_is_given_to_autobahn_whole():
    protocol = FakeAutobahn()
    data = client_frame(b"bin", opcode=2)
    DirectReader(protocol)(data)
    assert protocol.given == [data] and protocol.messages == []
    assert protocol.given[0] is data


@pytest.mark.parametrize(
    "state",
    [
        {"state": 1},  # connecting: the handshake is autobahn's
        {"state": 2},  # closing
        {"data": b"\x81"},  # autobahn holds the start of a frame
        {"current_frame": object()},
        {"inside_message": True},  # a fragmented message goes on
        {"_perMessageCompress": object()},
        {"applyMask": False},  # autobahn hands such payloads on masked
        {"logFrames": True},
        {"logOctets": True},
        {"trackedTimings": object()},
    ],
)
def test_while_autobahn_has_a_say_everything_is_its_own(state):
    protocol = FakeAutobahn(**state)
    DirectReader(protocol)(text("a"))
    assert protocol.given == [text("a")] and protocol.messages == []


def test_the_size_limits_are_autobahns_own():
    protocol = FakeAutobahn(maxFramePayloadSize=4, maxMessagePayloadSize=8)
    DirectReader(protocol)(text("abcd") + text("abcde"))
    assert protocol.messages == [(b"abcd", False)]
    assert protocol.given == [text("abcde")]


def test_only_daphnes_protocol_gets_a_reader():
    assert read_directly(lambda message: None) is False
    assert read_directly(functools.partial(print, FakeAutobahn())) is False


def test_daphnes_open_protocol_gets_one_reader():
    from daphne.ws_protocol import WebSocketProtocol

    protocol = WebSocketProtocol()
    send = functools.partial(print, protocol)  # daphne's: partial(handle_reply, it)
    assert read_directly(send) is False  # not connected yet: no frame state
    state = vars(FakeAutobahn())
    for name in ("messages", "given", "cancelled", "autoPingTimeoutCall"):
        state.pop(name)
    protocol.__dict__.update(state, autoPingTimeoutCall=None)
    assert read_directly(send) is True
    reader = protocol.dataReceived
    assert isinstance(reader, DirectReader)
    assert read_directly(send) is True and protocol.dataReceived is reader


# ------------------------------------------------- against autobahn's own reading
HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def open_autobahn(*, direct: bool, **options):
    """A real autobahn server protocol, open, on an in-memory transport; with
    ``direct`` its reads go through a ``DirectReader``."""
    from autobahn.twisted.websocket import (
        WebSocketServerFactory,
        WebSocketServerProtocol,
    )
    from twisted.internet.testing import StringTransport

    class Recording(WebSocketServerProtocol):
        def onMessage(self, payload, is_binary):  # noqa: N802 - autobahn's name
            self.messages.append((payload, is_binary))

    class Transport(StringTransport):
        def unregisterProducer(self):  # noqa: N802 - a TCP transport lets it pass
            self.producer = None

    factory = WebSocketServerFactory("ws://127.0.0.1:9000")
    factory.protocol = Recording
    factory.setProtocolOptions(**options)
    protocol = factory.buildProtocol(("127.0.0.1", 50000))
    transport = Transport()
    protocol.makeConnection(transport)
    protocol.dataReceived(HANDSHAKE)
    assert protocol.state == 3, transport.value()
    protocol.messages = []
    transport.clear()
    if direct:
        protocol.dataReceived = DirectReader(protocol)
    return protocol, transport


def outcome(protocol, transport) -> dict:
    """Everything a read can change that anyone could see."""
    return {
        "messages": protocol.messages,
        "written": transport.value(),  # pongs, close frames
        "state": protocol.state,
        "dropped": transport.disconnecting,
        "failed": protocol.failedByMe,
        "reason": protocol.wasNotCleanReason,
        "stats": {
            name: value
            for name, value in vars(protocol.trafficStats).items()
            if name.startswith("incoming")
        },
    }


SEQUENCES = {
    "texts": text("a") + text("é" * 40) + text(""),
    "sizes": text("x" * 125) + text("x" * 126) + text("x" * 65535) + text("x" * 65536),
    "control-and-fragments": text("a")
    + client_frame(b"hi", opcode=9)
    + client_frame(b"frag", fin=False)
    + client_frame(b"ment", opcode=0)
    + text("b"),
    "binary": text("a") + client_frame(b"\x00\x01", opcode=2) + text("b"),
    "invalid-utf8": text("a") + client_frame(b"\xed\xa0\x80") + text("b"),
    "unmasked": text("a") + struct.pack("!BB", 0x81, 2) + b"{}" + text("b"),
    "non-minimal": text("a") + b"\x81\xfe\x00\x02" + text("{}")[2:] + text("b"),
    "rsv": text("a") + b"\xc1" + text("{}")[1:] + text("b"),
    "close": text("a") + client_frame(struct.pack("!H", 1000), opcode=8) + text("b"),
    "over-the-limit": text("a") + text("x" * 101) + text("b"),
}


@pytest.mark.parametrize("name", SEQUENCES)
@pytest.mark.parametrize("chunk", [None, 1, 7, 50, 4096])
def test_a_direct_reader_leaves_the_protocol_as_autobahn_would(name, chunk):
    """The same bytes, in the same reads, to two real autobahn protocols, one with
    the reader: the same messages, answers, failures, state and traffic counts."""
    data = SEQUENCES[name]
    reads = (
        [data]
        if chunk is None
        else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    )
    options = {"maxFramePayloadSize": 100, "maxMessagePayloadSize": 100}
    limits = options if name == "over-the-limit" else {}
    seen = []
    for direct in (False, True):
        protocol, transport = open_autobahn(direct=direct, **limits)
        for read in reads:
            protocol.dataReceived(read)
        seen.append(outcome(protocol, transport))
    assert seen[1] == seen[0]
    assert seen[0]["messages"] or seen[0]["dropped"]  # the case did something
