"""Error and close codes of the wire contract (docs/protocol.md §2), and the error
a client gets as an ``error`` envelope. Pure: no Django.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """``error.payload.code`` values (§2)."""

    INVALID_JSON = "INVALID_JSON"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    UNKNOWN_REQUEST = "UNKNOWN_REQUEST"
    TIMEOUT = "TIMEOUT"
    INTERNAL = "INTERNAL"


class CloseCode(IntEnum):
    """Close codes the application sends (§2), all in the range daphne allows."""

    NORMAL = 1000
    INVALID_CREDENTIAL = 4001
    HEARTBEAT_TIMEOUT = 4003
    NOT_FOUND = 4004
    FORBIDDEN = 4005
    UNSUPPORTED_DATA = 4006
    NO_CREDENTIAL = 4008
    REPLACED = 4009
    SESSION_CLOSED = 4010
    INTERNAL = 4011
    GOING_AWAY = 4012
    TRY_AGAIN_LATER = 4013
    TOO_MANY_VIOLATIONS = 4029


# Codes that mean "the client sent a malformed frame": they count towards 4029.
VIOLATION_CODES = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.MESSAGE_TOO_LARGE,
    }
)


class RealtimeError(Exception):
    """An error the client gets as an ``error`` envelope; the socket stays open."""

    code: ErrorCode = ErrorCode.INTERNAL
    default_message = "internal error"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None):
        self.message = message or self.default_message
        self.retry_after = retry_after
        super().__init__(self.message)

    def payload(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "message": self.message,
            "retry_after": self.retry_after,
        }


class InvalidJson(RealtimeError):
    code, default_message = ErrorCode.INVALID_JSON, "frame is not valid JSON"


class InvalidMessage(RealtimeError):
    code, default_message = ErrorCode.INVALID_MESSAGE, "invalid message"


class UnknownType(RealtimeError):
    code, default_message = ErrorCode.UNKNOWN_TYPE, "unknown message type"


class MessageTooLarge(RealtimeError):
    code, default_message = ErrorCode.MESSAGE_TOO_LARGE, "message too large"


class RateLimited(RealtimeError):
    code, default_message = ErrorCode.RATE_LIMITED, "rate limit exceeded"


class Forbidden(RealtimeError):
    code, default_message = ErrorCode.FORBIDDEN, "not allowed"


class NotFound(RealtimeError):
    code, default_message = ErrorCode.NOT_FOUND, "not found"


class UnknownRequest(RealtimeError):
    code, default_message = ErrorCode.UNKNOWN_REQUEST, "unknown or expired request_id"


class RequestTimeout(RealtimeError):
    code, default_message = ErrorCode.TIMEOUT, "request was not answered in time"


class InternalError(RealtimeError):
    code, default_message = ErrorCode.INTERNAL, "internal error"


# §2's table: (name, meaning, what a client should do). 1006 and 1011 are never
# sent by the application but are what a client meets, so they are listed too.
CLOSE_CODES: dict[int, tuple[str, str, str]] = {
    1000: ("NORMAL", "normal closure", "—"),
    1006: ("ABNORMAL", "(never sent) connection dropped", "reconnect with backoff"),
    1011: (
        "SERVER_ERROR",
        "(sent by daphne) unhandled exception",
        "reconnect with backoff",
    ),
    4001: (
        "INVALID_CREDENTIAL",
        "credential invalid or expired",
        "refresh the token, then reconnect",
    ),
    4003: (
        "HEARTBEAT_TIMEOUT",
        "missed pongs, or a camera viewer stopped acknowledging",
        "reconnect with backoff",
    ),
    4004: (
        "NOT_FOUND",
        "room, conversation, stream or socket path does not exist",
        "do not retry",
    ),
    4005: (
        "FORBIDDEN",
        "not a member, banned, a guest where users only",
        "do not retry",
    ),
    4006: ("UNSUPPORTED_DATA", "reserved: unsupported data", "fix the client"),
    4008: ("NO_CREDENTIAL", "no credential presented", "go to login"),
    4009: (
        "REPLACED",
        "replaced by a newer connection (single-session policy)",
        "do not auto-reconnect",
    ),
    4010: ("SESSION_CLOSED", "live session closed by its host", "do not retry"),
    4011: (
        "INTERNAL",
        "internal error the application caught",
        "reconnect with backoff",
    ),
    4012: (
        "GOING_AWAY",
        "server going away or restarting, or it lost track",
        "reconnect with since to resync",
    ),
    4013: (
        "TRY_AGAIN_LATER",
        "overloaded, too many connections",
        "reconnect with backoff",
    ),
    4029: (
        "TOO_MANY_VIOLATIONS",
        "too many protocol violations",
        "back off for a minute",
    ),
}
