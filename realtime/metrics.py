"""The server's Prometheus metrics, on prometheus-client's default registry.

One endpoint per process (docs/operations.md, *Metrics*): each process counts its own
traffic in memory and serves it at ``/metrics`` (and, with ``METRICS_PORT``, on a port
of its own); Prometheus scrapes every process and sums. Labels are small and bounded:
endpoints, declared message types, error and close codes, never a user or a group.

On the hot paths a figure is a child bound once per endpoint and type
(``EndpointMeters``); the per-frame ones (received, sent, handler time) and the
per-receiver broadcast writes are plain numbers read by a collector when scraped:
the receive path and the fan-out loop take no lock for them.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from realtime import conf
from realtime.protocol import CloseCode

logger = logging.getLogger("realtime.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Handlers answer in well under a millisecond; a copilot query waits seconds.
HANDLER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
HANDLER_BUCKETS += (1.0, 2.5, 5.0, 10.0, 30.0)
# A local fan-out to a few thousand sockets takes milliseconds; a relayed one adds
# a Redis round trip.
FANOUT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)
FANOUT_BUCKETS += (0.1, 0.25, 0.5, 1.0, 2.5)

CONNECTIONS_OPEN = Gauge(
    "realtime_connections_open", "Sockets admitted and not yet gone.", ["endpoint"]
)
CONNECTIONS_ACCEPTED = Counter(
    "realtime_connections_accepted",
    "Sockets accepted (admitted, or then refused with a close code).",
    ["endpoint"],
)
CONNECTIONS_CLOSED = Counter(
    "realtime_connections_closed",
    "Sockets gone, by the close code the server sent, else the client's "
    "(codes outside the standard and protocol ones count as other).",
    ["endpoint", "code"],
)
CLOSES_SENT = Counter("realtime_closes", "Close frames the server sent.", ["code"])
BROADCASTS = Counter(
    "realtime_broadcasts",
    "Broadcasts and group events published by this process, by frame or event type.",
    ["type"],
)
ERRORS = Counter("realtime_errors", "Error frames sent.", ["code"])
RATE_LIMITED = Counter(
    "realtime_rate_limited",
    "Client frames refused with RATE_LIMITED.",
    ["endpoint", "type"],
)
CALLBACK_REQUESTS = Counter(
    "realtime_callback_requests",
    "Server-to-client requests sent.",
    ["endpoint", "type"],
)
CALLBACK_TIMEOUTS = Counter(
    "realtime_callback_timeouts",
    "Server-to-client requests not answered in time.",
    ["endpoint", "type"],
)
FANOUT_SECONDS = Histogram(
    "realtime_fanout_seconds",
    "local: from the hub's publish to its delivery loop over this process's sockets "
    "ending; relay: from the publishing process's publish (its wall clock) to this "
    "process's delivery loop ending for a relayed event.",
    ["path"],
    buckets=FANOUT_BUCKETS,
)
fanout_local = FANOUT_SECONDS.labels("local")
fanout_relay = FANOUT_SECONDS.labels("relay")

# Codes a close may carry: RFC 6455's and the protocol's. Anything else a client
# sends is "other", so that a client cannot make new series.
_KNOWN_CODES = frozenset({*range(1000, 1016), *(int(code) for code in CloseCode)})


def code_label(code: int | None) -> str:
    """A close code as a bounded label value."""
    if code is None:
        return "none"
    return str(code) if code in _KNOWN_CODES else "other"


# --------------------------------------------------- per frame: plain accumulators
# A client frame is counted when received and its handler timed, and each answer
# counted: prometheus-client's children take a lock per update (~4 of them per
# frame, measured: a quarter of a ping's instructions). On this one event loop plain
# attribute updates do, and a collector turns them into the same families when
# Prometheus scrapes.
class Tally:
    """A counter child without a lock: ``inc()`` on the event loop only."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Timing:
    """A histogram child without a lock: ``observe(seconds)`` on the event loop."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(HANDLER_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        self.counts[bisect_left(HANDLER_BUCKETS, seconds)] += 1


_received: dict[tuple[str, str], Tally] = {}
_sent: dict[tuple[str, str], Tally] = {}
_handlers: dict[tuple[str, str], Timing] = {}


class _FramesCollector(Collector):
    def collect(self) -> Iterator[Any]:
        received = CounterMetricFamily(
            "realtime_messages_received",
            "Client frames by routed type; unknown for types the endpoint does not "
            "take, invalid for frames that do not parse, binary for binary frames.",
            labels=["endpoint", "type"],
        )
        for labels, tally in list(_received.items()):
            received.add_metric(list(labels), tally.value)
        sent = CounterMetricFamily(
            "realtime_messages_sent",
            "Frames a socket sent itself (replies, errors, greetings, pings) by type; "
            "broadcasts are counted once each in realtime_broadcasts_total.",
            labels=["endpoint", "type"],
        )
        for labels, tally in list(_sent.items()):
            sent.add_metric(list(labels), tally.value)
        handlers = HistogramMetricFamily(
            "realtime_handler_seconds",
            "Time a client frame's handler took, answer included.",
            labels=["endpoint", "type"],
        )
        bounds = [*(str(b) for b in HANDLER_BUCKETS), "+Inf"]
        for labels, timing in list(_handlers.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, timing.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            handlers.add_metric(list(labels), buckets, timing.sum)
        yield from (received, sent, handlers)


REGISTRY.register(_FramesCollector())


# ------------------------------------------------------------- hot path: bound once
class EndpointMeters:
    """One endpoint's children, each bound on first use and kept (labels never)."""

    __slots__ = ("endpoint", "_received", "_sent", "_handler", "_limited", "_calls")

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._received: dict[str, Any] = {}
        self._sent: dict[str, Any] = {}
        self._handler: dict[str, Any] = {}
        self._limited: dict[str, Any] = {}
        self._calls: dict[str, tuple[Any, Any]] = {}

    def received(self, type_: str) -> Tally:
        child = self._received.get(type_)
        if child is None:
            child = _received.setdefault((self.endpoint, type_), Tally())
            self._received[type_] = child
        return child

    def sent(self, type_: str) -> Tally:
        child = self._sent.get(type_)
        if child is None:
            child = _sent.setdefault((self.endpoint, type_), Tally())
            self._sent[type_] = child
        return child

    def handler(self, type_: str) -> Timing:
        child = self._handler.get(type_)
        if child is None:
            child = _handlers.setdefault((self.endpoint, type_), Timing())
            self._handler[type_] = child
        return child

    def rate_limited(self, type_: str) -> Any:
        child = self._limited.get(type_)
        if child is None:
            child = self._limited[type_] = RATE_LIMITED.labels(self.endpoint, type_)
        return child

    def callbacks(self, type_: str) -> tuple[Any, Any]:
        """``(requests, timeouts)`` of one server-to-client request type."""
        pair = self._calls.get(type_)
        if pair is None:
            pair = self._calls[type_] = (
                CALLBACK_REQUESTS.labels(self.endpoint, type_),
                CALLBACK_TIMEOUTS.labels(self.endpoint, type_),
            )
        return pair

    def opened(self) -> None:
        CONNECTIONS_OPEN.labels(self.endpoint).inc()

    def open_closed(self) -> None:
        CONNECTIONS_OPEN.labels(self.endpoint).dec()

    def accepted(self) -> None:
        CONNECTIONS_ACCEPTED.labels(self.endpoint).inc()

    def closed(self, code: int | None) -> None:
        CONNECTIONS_CLOSED.labels(self.endpoint, code_label(code)).inc()


_endpoints: dict[str, EndpointMeters] = {}


def endpoint_meters(endpoint: str) -> EndpointMeters:
    """The one ``EndpointMeters`` of ``endpoint`` in this process."""
    meters = _endpoints.get(endpoint)
    if meters is None:
        meters = _endpoints[endpoint] = EndpointMeters(endpoint)
    return meters


def close_sent(code: int) -> None:
    CLOSES_SENT.labels(code_label(int(code))).inc()


_errors: dict[str, Any] = {}


def error_sent(code: str) -> None:
    child = _errors.get(code)
    if child is None:
        child = _errors[code] = ERRORS.labels(code)
    child.inc()


_broadcasts: dict[str, Any] = {}
_TYPE_PREFIX = '{"type":"'


def broadcast_published(type_: str) -> None:
    """One broadcast or group event of ``type_`` left this process."""
    child = _broadcasts.get(type_)
    if child is None:
        child = _broadcasts[type_] = BROADCASTS.labels(type_)
    child.inc()


def frame_type(text: str) -> str:
    """The ``type`` of a frame made by ``protocol.encode_frame`` (its first key),
    read from the text's head without parsing it; ``unknown`` otherwise."""
    if text.startswith(_TYPE_PREFIX):
        end = text.find('"', len(_TYPE_PREFIX))
        if 0 < end <= 80:  # wire types are short: anything longer is not one
            return text[len(_TYPE_PREFIX) : end]
    return "unknown"


# ----------------------------------------------------- per receiver: plain integers
class BroadcastWrites:
    """Broadcast frames written to sockets, per path, counted per receiver.

    Plain integers (an attribute increment, as cheap as the ``Counter`` dict that
    was here before): the collector below reads them when Prometheus scrapes.
    """

    __slots__ = ("prepared", "asgi", "queued")

    def __init__(self) -> None:
        self.prepared = 0  # framed once per process, written straight to the socket
        self.asgi = 0  # through the server's websocket.send
        self.queued = 0  # held for a client that is behind, written later

    def __getitem__(self, path: str) -> int:
        return getattr(self, path)


broadcast_writes = BroadcastWrites()


class _WritesCollector(Collector):
    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "realtime_broadcast_writes",
            "Broadcast frames to sockets by path: prepared (framed once) or asgi; "
            "queued counts those held for a client that is behind, written later.",
            labels=["path"],
        )
        for path in BroadcastWrites.__slots__:
            family.add_metric([path], broadcast_writes[path])
        yield family


REGISTRY.register(_WritesCollector())

direct_reads = Tally()  # client frames daphne_reads.py handed to daphne itself


class _ReadsCollector(Collector):
    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "realtime_direct_reads",
            "Client text frames read past autobahn's frame machine (daphne only).",
        )
        family.add_metric([], direct_reads.value)
        yield family


REGISTRY.register(_ReadsCollector())


# ------------------------------------------------------------------ exposition
def render() -> bytes:
    """Every family of this process (process and Python ones too), as Prometheus
    text exposition."""
    return generate_latest(REGISTRY)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """One sample's current value in this process, 0 if it has none yet (tests,
    operators' shells)."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


_port_lock = threading.Lock()
_port_served: int | None = None


def serve_port() -> int | None:
    """Start prometheus-client's HTTP server on ``METRICS_PORT`` (at
    ``METRICS_ADDR``) once per process; ``None`` when the knob is 0.

    A port already taken raises ``ImproperlyConfigured``: two processes on one
    machine need a port each (docs/operations.md).
    """
    global _port_served
    port = int(conf.get("METRICS_PORT"))
    if port == 0:
        return None
    with _port_lock:
        if _port_served is None:
            addr = str(conf.get("METRICS_ADDR"))
            try:
                start_http_server(port, addr=addr)
            except OSError as exc:
                raise ImproperlyConfigured(
                    f"METRICS_PORT={port}: cannot listen on {addr}:{port} ({exc}); "
                    "give each process a port of its own, or 0 for none"
                ) from None
            _port_served = port
            logger.info("metrics on http://%s:%s/metrics", addr, port)
    return _port_served


class MetricsPortMiddleware:
    """Starts the ``METRICS_PORT`` server when Django builds its request handler
    (once per server process, never in management commands), then steps aside."""

    def __init__(self, get_response: Any) -> None:
        serve_port()
        raise MiddlewareNotUsed()
