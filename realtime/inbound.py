"""The inbound step: a client's text frame → its route and payload, or a RealtimeError.

One ``Inbound`` per endpoint class, built from its declared message types: it holds
the routing table and reads the throttle rates, and keeps no state of a socket. A
socket's own throttles and violation times are handed in, so an idle socket carries
nothing for them (bench W2 counts kilobytes per socket). No I/O: the consumer sends
what this decides: a frame's route, or the refusal it gets (``refusal``), and whether
a socket's protocol violations are past their budget (``violated``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from realtime import conf
from realtime.protocol import (
    ClientEnvelope,
    InvalidMessage,
    MessageTooLarge,
    RateLimited,
    RealtimeError,
    UnknownType,
    decode_frame,
    validate_payload,
)
from realtime.ratelimit import LocalRateLimiter

Models = Mapping[str, type[BaseModel] | None]
Limiters = dict[str, LocalRateLimiter | None]
VIOLATIONS = " violations"  # a socket's violation budget; no client type has a space


@dataclass(frozen=True, slots=True)
class Route:
    """Where a client type goes: ``handler`` is a method name of the consumer."""

    handler: str
    model: type[BaseModel] | None
    as_task: bool = False  # waits on the client (a callback): runs as a task
    reply: bool = False  # answers a server → client request (``request_id``)


def handler_name(type_: str) -> str:
    """``chat.send`` → ``on_chat_send``: client types reach only ``on_`` methods."""
    return "on_" + type_.replace(".", "_")


def build_routes(
    owner: type, messages: Models, tasks: frozenset[str], replies: Models
) -> dict[str, Route]:
    """The table of one endpoint class; a declared type without a handler is a bug
    found when the class is made, not when a client first sends it."""
    routes: dict[str, Route] = {}
    for type_, model in messages.items():
        handler = handler_name(type_)
        if not callable(getattr(owner, handler, None)):
            raise TypeError(f"{owner.__name__} declares {type_!r} but has no {handler}")
        routes[type_] = Route(handler, model, as_task=type_ in tasks)
    for type_, model in replies.items():
        routes[type_] = Route("_on_reply", model, reply=True)
    return routes


def _with_request_id(error: RealtimeError, request_id: str | None) -> RealtimeError:
    error.request_id = request_id  # type: ignore[attr-defined]
    return error


class Inbound:
    """An endpoint's inbound step: routes, limits and throttles, no socket state."""

    def __init__(self, routes: dict[str, Route], throttle_setting: str) -> None:
        self.routes = routes
        self.throttle_setting = throttle_setting

    def read(self, text: str) -> tuple[Route, ClientEnvelope, Any]:
        """Decode and validate one text frame against the table.

        Raises a ``RealtimeError`` whose ``request_id`` attribute is the frame's, when
        one could be read, so that the error answers the request that caused it.
        """
        limit = conf.get("REALTIME_MAX_TEXT_BYTES")
        # A str of n chars is at most 4n UTF-8 bytes: only long frames are encoded.
        if len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit:
            raise _with_request_id(
                MessageTooLarge(f"text frame over {limit} bytes"), None
            )
        envelope = decode_frame(text)  # carries its request_id when it raises
        route = self.routes.get(envelope.type)
        if route is None:
            raise _with_request_id(
                UnknownType(f"unknown type {envelope.type!r} on this endpoint"),
                envelope.request_id,
            )
        if route.model is None:
            return route, envelope, envelope.payload
        try:
            payload = validate_payload(route.model, envelope.payload)
        except InvalidMessage as exc:
            raise _with_request_id(exc, envelope.request_id) from None
        return route, envelope, payload

    def rate(self, type_: str) -> tuple[int, float] | None:
        """``(count, seconds)``: the endpoint's rate, else the toolkit's."""
        own = conf.get(self.throttle_setting) if self.throttle_setting else {}
        return own.get(type_) or conf.get("REALTIME_THROTTLES").get(type_)

    def refusal(
        self, limiters: Limiters, route: Route, type_: str, tasks: int
    ) -> RateLimited | None:
        """Count one admitted ``type_`` frame of a socket with ``tasks`` handlers
        waiting; the ``RATE_LIMITED`` it gets, if any: over its type's rate, or a
        handler that would wait while ``REALTIME_MAX_TASKS`` already do (each holds
        a task, and maybe a callback)."""
        retry_after = self.throttle(limiters, type_)
        if retry_after is not None:
            return RateLimited(f"too many {type_} messages", retry_after=retry_after)
        if route.as_task and tasks >= int(conf.get("REALTIME_MAX_TASKS")):
            return RateLimited(f"too many {type_} in progress", retry_after=1.0)
        return None

    def violated(self, limiters: Limiters) -> bool:
        """Count one protocol violation of a socket; ``True`` once they are past
        ``REALTIME_MAX_VIOLATIONS`` in ``REALTIME_VIOLATION_WINDOW`` (close 4029).
        The budget is made on a socket's first violation."""
        budget = limiters.get(VIOLATIONS)
        if budget is None:
            budget = limiters[VIOLATIONS] = LocalRateLimiter(
                limit=conf.get("REALTIME_MAX_VIOLATIONS"),
                window=conf.get("REALTIME_VIOLATION_WINDOW"),
            )
        return budget.take() is not None

    def throttle(self, limiters: Limiters, type_: str) -> float | None:
        """Count one ``type_`` frame of a socket; seconds to wait if over its rate.

        A socket's limiter for a type is made on that type's first frame (most
        sockets never send most types); ``None`` is remembered for unthrottled ones.
        """
        try:
            limiter = limiters[type_]
        except KeyError:
            rate = self.rate(type_)
            limiter = limiters[type_] = (
                None
                if rate is None
                else LocalRateLimiter(limit=rate[0], window=rate[1])
            )
        return None if limiter is None else limiter.take()
