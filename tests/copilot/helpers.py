"""Helpers for copilot socket tests: connect, read an answer, answer callbacks."""

from __future__ import annotations

from channels.testing import WebsocketCommunicator

from tests.conftest import communicator, recv, recv_type, send

ITEMS = [
    {"name": "monthly_costs", "path": "/local/costs"},
    {"name": "instances", "path": "/local/instances"},
]
COSTS = {
    "records": [{"month": "2026-01", "amount": 10}, {"month": "2026-02", "amount": 12}]
}


async def open_copilot(token: str, **kwargs) -> tuple[WebsocketCommunicator, dict]:
    """A connected copilot socket and its ``connected`` greeting."""
    comm = communicator("/ws/copilot/", token=token, **kwargs)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    greeting = await recv(comm)
    assert greeting["type"] == "connected", greeting
    return comm, greeting


async def ask(comm, text: str, request_id: str | None = None, **payload) -> str:
    """Send a query; its query id from ``query.accepted``."""
    extra = {"request_id": request_id} if request_id else {}
    await send(comm, "query", {"text": text, **payload}, **extra)
    accepted = await recv_type(comm, "query.accepted")
    if request_id:
        assert accepted["request_id"] == request_id
    return accepted["payload"]["query_id"]


async def reply(comm, frame: dict, type_: str, payload: dict) -> None:
    await send(comm, type_, payload, request_id=frame["request_id"])


async def read_answer(
    comm, query_id: str, timeout: float = 3
) -> tuple[list[dict], dict]:
    """The ``response.delta`` payloads and the final ``response`` of one query."""
    deltas = []
    while True:
        frame = await recv(comm, timeout)
        if frame["type"] == "ping":
            continue
        assert frame["payload"].get("query_id") == query_id, frame
        if frame["type"] == "response.delta":
            deltas.append(frame["payload"])
        elif frame["type"] == "response":
            return deltas, frame["payload"]
        else:
            raise AssertionError(f"unexpected {frame}")


def joined(deltas: list[dict]) -> str:
    return "".join(delta["delta"] for delta in deltas)


async def no_frame(comm, timeout: float = 0.2) -> bool:
    """True when nothing arrives within ``timeout`` (the app is left running)."""
    return await comm.receive_nothing(timeout)
