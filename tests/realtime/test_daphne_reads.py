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
from tests.e2e.test_daphne_reads_e2e import client_frame


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
        self.logOctets = self.logFrames = False
        self.trackedTimings = None
        self.maxFramePayloadSize = self.maxMessagePayloadSize = 0
        self.autoPingTimeoutCall = None
        self.autoPingRestartOnAnyTraffic = True
        self.trafficStats = SimpleNamespace(
            incomingOctetsWireLevel=0,
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
