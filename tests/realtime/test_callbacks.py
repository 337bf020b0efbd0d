"""The server → client request registry: ids, timeouts, reuse, foreign ids."""

from __future__ import annotations

import asyncio

import pytest

from realtime.callbacks import CallbackRegistry, CallbackTimeout
from realtime.protocol import InvalidMessage, UnknownRequest

pytestmark = pytest.mark.timeout(10)


async def test_answer_reaches_the_waiter_once():
    registry = CallbackRegistry()
    sent: list[str] = []

    async def send(request_id: str) -> None:
        sent.append(request_id)

    waiter = asyncio.ensure_future(registry.call(send, {"api_result"}, timeout=2))
    await asyncio.sleep(0)
    (rid,) = sent
    assert rid.startswith("srv-") and len(registry) == 1
    registry.resolve(rid, "api_result", {"status": 200})
    assert await waiter == {"status": 200}
    assert len(registry) == 0
    with pytest.raises(UnknownRequest):  # single use
        registry.resolve(rid, "api_result", {})


async def test_ids_are_random_and_unique():
    registry = CallbackRegistry()
    ids = {registry.open({"x"}) for _ in range(1000)}
    assert len(ids) == 1000


async def test_timeout_forgets_the_id_so_a_late_reply_is_unknown():
    registry = CallbackRegistry()
    rid = registry.open({"x"})
    with pytest.raises(CallbackTimeout) as info:
        await registry.wait(rid, 0.05)
    assert info.value.request_id == rid
    with pytest.raises(UnknownRequest):
        registry.resolve(rid, "x", {})


async def test_foreign_and_unknown_ids():
    mine, theirs = CallbackRegistry(), CallbackRegistry()
    rid = theirs.open({"x"})
    with pytest.raises(UnknownRequest):
        mine.resolve(rid, "x", {})
    with pytest.raises(UnknownRequest):
        mine.resolve("srv-made-up", "x", {})
    with pytest.raises(InvalidMessage, match="request_id"):
        mine.resolve(None, "x", {})
    with pytest.raises(UnknownRequest):
        await mine.wait("srv-made-up", 1)


async def test_wrong_reply_type_keeps_the_request_pending():
    registry = CallbackRegistry()
    rid = registry.open({"api_result"})
    waiter = asyncio.ensure_future(registry.wait(rid, 1))
    await asyncio.sleep(0)
    with pytest.raises(InvalidMessage, match="expects api_result"):
        registry.resolve(rid, "human_response", {})
    registry.resolve(rid, "api_result", {"ok": 1})
    assert await waiter == {"ok": 1}


async def test_cancel_all_wakes_waiters_with_cancellation():
    registry = CallbackRegistry()
    rid = registry.open({"x"})
    waiter = asyncio.ensure_future(registry.wait(rid, 5))
    await asyncio.sleep(0)
    registry.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(registry) == 0


async def test_failed_send_leaves_nothing_pending():
    registry = CallbackRegistry()

    async def broken(request_id: str) -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await registry.call(broken, {"x"}, timeout=1)
    assert len(registry) == 0
