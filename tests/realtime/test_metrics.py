"""Prometheus metrics move with the traffic, family by family; /metrics serves them."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

import pytest
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.test import AsyncClient

from realtime import metrics
from realtime.hub import Hub
from realtime.metrics import code_label, frame_type, sample
from realtime.protocol import encode_frame
from tests.conftest import closed_with, communicator, recv_type, send
from tests.e2e.server import free_port
from tests.services import redis_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


class Delta:
    """A sample's change since it was made."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.before = sample(name, labels)

    @property
    def value(self) -> float:
        return sample(self.name, self.labels) - self.before


async def open_echo(token: str):
    comm = communicator("/ws/echo/", token=token)
    assert (await comm.connect())[0]
    await recv_type(comm, "echo.ready")
    return comm


# ---------------------------------------------------------------- pure helpers
def test_frame_type_reads_the_head_of_an_encoded_frame():
    assert frame_type(encode_frame("chat.message", {"a": 1})) == "chat.message"
    assert frame_type('{"payload":{},"type":"x"}') == "unknown"
    assert frame_type('{"type":"' + "x" * 200 + '"}') == "unknown"
    assert frame_type("not json") == "unknown"


def test_close_codes_are_bounded_labels():
    assert code_label(1000) == "1000" and code_label(4012) == "4012"
    assert code_label(4999) == "other" and code_label(None) == "none"


# ---------------------------------------------------------------- connections
async def test_connections_open_accepted_and_closed_by_code(token):
    open_ = Delta("realtime_connections_open", endpoint="echo")
    accepted = Delta("realtime_connections_accepted_total", endpoint="echo")
    closed = Delta("realtime_connections_closed_total", endpoint="echo", code="1000")
    refused = Delta("realtime_connections_closed_total", endpoint="echo", code="4001")
    sent = Delta("realtime_closes_total", code="4001")
    comm = await open_echo(token)
    assert open_.value == 1 and accepted.value == 1
    await comm.disconnect(code=1000)
    await asyncio.sleep(0.05)
    assert open_.value == 0 and closed.value == 1
    bad = communicator("/ws/echo/", token="not-a-token")
    await bad.connect()
    assert await closed_with(bad) == 4001
    await bad.disconnect(code=4001)
    assert accepted.value == 2 and refused.value == 1 and sent.value == 1
    assert open_.value == 0  # refused sockets were never admitted


# ---------------------------------------------------------------- messages
async def test_messages_received_and_sent_by_type_and_errors_by_code(token):
    received = {
        type_: Delta("realtime_messages_received_total", endpoint="echo", type=type_)
        for type_ in ("echo", "unknown", "invalid")
    }
    replies = Delta("realtime_messages_sent_total", endpoint="echo", type="echo")
    greetings = Delta(
        "realtime_messages_sent_total", endpoint="echo", type="echo.ready"
    )
    errors_sent = Delta("realtime_messages_sent_total", endpoint="echo", type="error")
    unknown = Delta("realtime_errors_total", code="UNKNOWN_TYPE")
    invalid = Delta("realtime_errors_total", code="INVALID_JSON")
    comm = await open_echo(token)
    for n in range(3):
        await send(comm, "echo", {"n": n})
        await recv_type(comm, "echo")
    await send(comm, "no.such.type", {})
    await recv_type(comm, "error")
    await comm.send_to(text_data="{")
    await recv_type(comm, "error")
    await comm.disconnect()
    assert received["echo"].value == 3
    assert received["unknown"].value == 1 and received["invalid"].value == 1
    assert replies.value == 3 and greetings.value == 1 and errors_sent.value == 2
    assert unknown.value == 1 and invalid.value == 1


async def test_rate_limited_by_endpoint_and_type(token, settings):
    settings.ECHO_THROTTLES = {"echo": (1, 60.0)}
    limited = Delta("realtime_rate_limited_total", endpoint="echo", type="echo")
    comm = await open_echo(token)
    await send(comm, "echo", {})
    await recv_type(comm, "echo")
    await send(comm, "echo", {})
    assert (await recv_type(comm, "error"))["payload"]["code"] == "RATE_LIMITED"
    await comm.disconnect()
    assert limited.value == 1


async def test_callback_requests_and_timeouts(token):
    labels = {"endpoint": "echo", "type": "echo.question"}
    requests = Delta("realtime_callback_requests_total", **labels)
    timeouts = Delta("realtime_callback_timeouts_total", **labels)
    comm = await open_echo(token)
    await send(comm, "echo.ask", {"question": "q?", "timeout": 0.1})
    await recv_type(comm, "echo.question")  # not answered
    answered = await recv_type(comm, "echo.answered", skip=("ping", "error"))
    assert answered["payload"] == {"answer": None}
    await comm.disconnect()
    assert requests.value == 1 and timeouts.value == 1


async def test_handler_duration_histogram(token):
    labels = {"endpoint": "echo", "type": "echo"}
    count = Delta("realtime_handler_seconds_count", **labels)
    fast = Delta("realtime_handler_seconds_bucket", le="10.0", **labels)
    total = Delta("realtime_handler_seconds_sum", **labels)
    task = Delta("realtime_handler_seconds_count", endpoint="echo", type="echo.ask")
    comm = await open_echo(token)
    for n in range(4):
        await send(comm, "echo", {"n": n})
        await recv_type(comm, "echo")
    await send(comm, "echo.ask", {"question": "q?", "timeout": 5})
    question = await recv_type(comm, "echo.question")
    await send(comm, "echo.answer", {"answer": "a"}, request_id=question["request_id"])
    await recv_type(comm, "echo.answered")
    await comm.disconnect()
    assert count.value == 4 and fast.value == 4 and total.value > 0
    assert task.value == 1  # a handler run as a task is timed too


# ---------------------------------------------------------------- broadcasts
async def test_broadcasts_by_type_writes_per_receiver_and_fanout_latency(token):
    published = Delta("realtime_broadcasts_total", type="echo.broadcasted")
    fanout = Delta("realtime_fanout_seconds_count", path="local")
    writes = [
        Delta("realtime_broadcast_writes_total", path=path)
        for path in ("prepared", "asgi", "queued")
    ]
    a, b = await open_echo(token), await open_echo(token)
    await send(a, "echo.broadcast", {"x": 1})
    for comm in (a, b):
        await recv_type(comm, "echo.broadcasted")
    await a.disconnect()
    await b.disconnect()
    assert published.value == 1 and fanout.value == 1
    assert sum(delta.value for delta in writes) == 2  # one per receiver


class _Member:
    def __init__(self, name: str) -> None:
        self.channel_name = name
        self.got = asyncio.Event()

    def deliver_now(self, event: dict) -> bool:
        self.got.set()
        return True

    async def hub_deliver(self, event: dict) -> None:  # pragma: no cover - unused
        self.got.set()


async def test_relayed_fanout_latency_is_measured_where_it_arrives():
    url, prefix = redis_url(), f"t{id(object())}"
    a, b = Hub(url, prefix), Hub(url, prefix)
    relay = Delta("realtime_fanout_seconds_count", path="relay")
    try:
        there = _Member("there")
        await b.join("g", there)
        await asyncio.sleep(0.1)  # the subscription settles
        await a.publish("g", {"type": "realtime.fanout", "text": "x"})
        await asyncio.wait_for(there.got.wait(), 5)
        await asyncio.sleep(0.05)  # observed right after the delivery loop
        assert relay.value == 1
    finally:
        await a.close()
        await b.close()


# ---------------------------------------------------------------- exposition
async def test_metrics_view_serves_every_family_and_process_metrics(token):
    comm = await open_echo(token)
    await send(comm, "echo", {})
    await recv_type(comm, "echo")
    reply = await AsyncClient().get("/metrics", REMOTE_ADDR="127.0.0.1")
    await comm.disconnect()
    assert reply.status_code == 200
    assert reply["Content-Type"].startswith("text/plain")
    text = reply.content.decode()
    for family in (
        "realtime_connections_open",
        "realtime_connections_accepted_total",
        "realtime_messages_received_total",
        "realtime_messages_sent_total",
        "realtime_handler_seconds_bucket",
        "realtime_broadcast_writes_total",
        "process_cpu_seconds_total",
        "python_info",
    ):
        assert family in text, family
    assert 'realtime_messages_received_total{endpoint="echo",type="echo"}' in text


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_metrics_port_serves_the_same_registry_once(settings, monkeypatch):
    monkeypatch.setattr(metrics, "_port_served", None)
    settings.METRICS_PORT = 0
    assert metrics.serve_port() is None
    settings.METRICS_PORT = port = free_port()
    with pytest.raises(MiddlewareNotUsed):
        metrics.MetricsPortMiddleware(lambda request: None)
    assert metrics.serve_port() == port  # started once: the second call is a no-op
    assert "realtime_broadcast_writes_total" in _get(port)


def test_a_metrics_port_in_use_names_the_knob(settings, monkeypatch):
    monkeypatch.setattr(metrics, "_port_served", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.METRICS_PORT = taken.getsockname()[1]
        with pytest.raises(ImproperlyConfigured, match="METRICS_PORT"):
            metrics.serve_port()
