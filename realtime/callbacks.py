"""Server → client requests: random single-use ids bound to one connection.

Modelled on python-socketio's ``call()``: the server sends a frame with a fresh
``request_id``, the client answers with a frame carrying the same id, and the waiting
coroutine gets the answer — or ``CallbackTimeout`` after the deadline. An id is
forgotten as soon as it is answered or expires, so a reused, late, unknown or another
connection's id is ``UNKNOWN_REQUEST``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from realtime.protocol import InvalidMessage, UnknownRequest


class CallbackTimeout(Exception):
    """The client did not answer ``request_id`` in time."""

    def __init__(self, request_id: str, timeout: float) -> None:
        super().__init__(f"request {request_id} not answered within {timeout:g} s")
        self.request_id = request_id
        self.timeout = timeout


@dataclass
class _Pending:
    expects: frozenset[str]
    future: asyncio.Future = field(repr=False)


def new_request_id() -> str:
    """128 bits from the OS CSPRNG: unguessable, so ids cannot be forged or reused."""
    return "srv-" + secrets.token_urlsafe(16)


class CallbackRegistry:
    """The pending server → client requests of one connection."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, expects: set[str] | frozenset[str]) -> str:
        """Register a new request answered by one of the ``expects`` types."""
        request_id = new_request_id()
        loop = asyncio.get_running_loop()
        self._pending[request_id] = _Pending(frozenset(expects), loop.create_future())
        return request_id

    async def wait(self, request_id: str, timeout: float) -> Any:
        """The answer to ``request_id``; ``CallbackTimeout`` after ``timeout`` s."""
        pending = self._pending.get(request_id)
        if pending is None:
            raise UnknownRequest(f"request_id {request_id} is not pending")
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        except TimeoutError:
            raise CallbackTimeout(request_id, timeout) from None
        finally:
            self._pending.pop(request_id, None)

    async def call(
        self,
        send: Callable[[str], Awaitable[None]],
        expects: set[str] | frozenset[str],
        timeout: float,
    ) -> Any:
        """Open a request, let ``send(request_id)`` deliver it, wait for the answer."""
        request_id = self.open(expects)
        try:
            await send(request_id)
        except BaseException:
            self._pending.pop(request_id, None)
            raise
        return await self.wait(request_id, timeout)

    def resolve(self, request_id: str | None, reply_type: str, answer: Any) -> None:
        """Hand a client's reply to the waiting request; single use."""
        if request_id is None:
            raise InvalidMessage("request_id: required on a reply")
        pending = self._pending.get(request_id)
        if pending is None or pending.future.done():
            raise UnknownRequest(f"request_id {request_id} is unknown, expired or used")
        if reply_type not in pending.expects:
            expected = " or ".join(sorted(pending.expects))
            raise InvalidMessage(f"request_id {request_id} expects {expected}")
        del self._pending[request_id]
        pending.future.set_result(answer)

    def cancel_all(self) -> None:
        """On disconnect: every waiting request ends with ``CancelledError``."""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self._pending.clear()
