"""The wire contract (docs/protocol.md §1-2): envelope models, codes and the codec.

Pure: imports nothing from Django, so clients, tests and the camera worker can share it.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
)

# The codes and errors of §2 live in realtime.codes; re-exported: the codec's API.
from realtime.codes import (  # noqa: F401
    VIOLATION_CODES,
    CloseCode,
    ErrorCode,
    Forbidden,
    InternalError,
    InvalidJson,
    InvalidMessage,
    MessageTooLarge,
    NotFound,
    RateLimited,
    RealtimeError,
    RequestTimeout,
    UnknownRequest,
    UnknownType,
)

MAX_SAFE_INTEGER = 2**53
MAX_DEPTH = 32

TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_REQUEST_ID_RE = re.compile(REQUEST_ID_PATTERN)


# --------------------------------------------------------------------------- models
def _iso8601(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO-8601 date-time") from None
    return value


Iso8601 = Annotated[str, AfterValidator(_iso8601)]
MessageType = Annotated[str, StringConstraints(pattern=TYPE_PATTERN, max_length=64)]
RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]


class StrictModel(BaseModel):
    """Base of every payload model: strict types, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OpenModel(BaseModel):
    """A payload that may be any object (``ping``)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class ClientEnvelope(StrictModel):
    """A client → server frame, validated once at the edge."""

    type: MessageType
    payload: dict[str, Any]
    timestamp: Iso8601 | None = None
    request_id: RequestId | None = None


class ServerEnvelope(StrictModel):
    """A server → client frame (for clients and tests; the server encodes directly)."""

    type: MessageType
    payload: dict[str, Any]
    timestamp: Annotated[str, StringConstraints(pattern=r"Z$")]
    request_id: RequestId | None = None


class ErrorPayload(StrictModel):
    code: ErrorCode
    message: str
    retry_after: float | None = None


# --------------------------------------------------------------------------- decoding
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _bad_string(text: str) -> str | None:
    if "\x00" in text:
        return "text may not contain NUL"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "text contains a lone surrogate"
    return None


def _problem(value: Any, depth: int) -> str | None:
    """What §1 refuses in ``value`` (browsers/PostgreSQL cannot take it back), or None.

    No path strings are built here: this runs on every frame. ``_locate`` finds the
    path only when something is wrong.
    """
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    kind = type(value)
    if kind is str:
        return _bad_string(value)
    if kind is dict:
        for key, item in value.items():
            problem = _bad_string(key) or _problem(item, depth + 1)
            if problem:
                return problem
    elif kind is list:
        for item in value:
            problem = _problem(item, depth + 1)
            if problem:
                return problem
    elif kind is int or kind is float:
        # 1e400 parses as inf: caught here too.
        if not abs(value) <= MAX_SAFE_INTEGER:
            return "number beyond 2^53"
    return None


def _locate(value: Any, where: str, depth: int) -> str | None:
    """The dotted path of the first problem ``_problem`` found."""
    if type(value) is dict:
        for key, item in value.items():
            if _bad_string(key):
                return where
            if _problem(item, depth + 1):
                return _locate(item, f"{where}.{key}", depth + 1)
    elif type(value) is list:
        for index, item in enumerate(value):
            if _problem(item, depth + 1):
                return _locate(item, f"{where}[{index}]", depth + 1)
    return where


def _plainly_safe(text: str) -> bool:
    """True if ``text`` cannot hold a string or a depth §1 refuses: skip the walk.

    A NUL or a lone surrogate needs a ``\\u`` escape (raw control characters are not
    JSON; a socket's text is valid UTF-8), and fewer than 32 brackets cannot nest 33
    deep. Numbers are checked while parsing (``_checked_int``, ``_checked_float``).
    Most frames qualify (measured: the walk was the largest single cost of a frame).
    """
    return (
        text.count("{") + text.count("[") < MAX_DEPTH
        and "\\u" not in text
        and (text.isascii() or _bad_string(text) is None)
    )


def _check_value(value: Any, where: str, depth: int) -> None:
    problem = _problem(value, depth)
    if problem:
        raise InvalidMessage(f"{_locate(value, where, depth)}: {problem}")


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """``payload.content: Field required`` — the first error, naming the field."""
    first = exc.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    field = ".".join(part for part in (prefix, location) if part)
    return f"{field}: {first['msg']}" if field else first["msg"]


def salvage_request_id(obj: Any) -> str | None:
    """The ``request_id`` of an invalid frame, if it has a valid one, to echo it."""
    if isinstance(obj, dict):
        candidate = obj.get("request_id")
        if isinstance(candidate, str) and _REQUEST_ID_RE.match(candidate):
            return candidate
    return None


class _BigNumber(Exception):
    """A number §1 refuses, met while parsing: the frame takes the full walk."""


def _checked_int(digits: str) -> int:
    value = int(digits)
    if len(digits) > 15 and abs(value) > MAX_SAFE_INTEGER:
        raise _BigNumber
    return value


def _checked_float(digits: str) -> float:
    value = float(digits)  # 1e400 parses as inf: refused here too
    if not abs(value) <= MAX_SAFE_INTEGER:
        raise _BigNumber
    return value


# One decoder each: json.loads(text, parse_constant=...) would build one per frame.
# The checked one refuses numbers past 2^53 as it meets them, so no frame is walked
# for its numbers; the plain one parses such a frame again for the walk to name
# the field.
_decoder = json.JSONDecoder(
    parse_constant=_reject_constant,
    parse_int=_checked_int,
    parse_float=_checked_float,
)
_plain_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(text: str) -> tuple[Any, bool]:
    """JSON text → (Python value, numbers all within §1's range);
    ``InvalidJson`` / ``InvalidMessage`` per §1."""
    try:
        try:
            return _decoder.decode(text), True
        except _BigNumber:
            return _plain_decoder.decode(text), False
    except RecursionError:
        raise InvalidMessage(f"frame nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidJson(f"frame is not valid JSON: {exc}") from None


def decode_frame(text: str) -> ClientEnvelope:
    """Parse and validate one client text frame; raises a ``RealtimeError``.

    An ``InvalidMessage`` raised here carries the salvaged ``request_id`` (if any) as
    ``exc.request_id`` so that the error reply can echo it.
    """
    obj, numbers_ok = parse_json(text)
    try:
        if type(obj) is not dict:
            raise InvalidMessage("frame must be a JSON object")
        if not (numbers_ok and _plainly_safe(text)):
            _check_value(obj, "frame", 1)
        try:
            return ClientEnvelope.model_validate(obj)
        except ValidationError as exc:
            raise InvalidMessage(describe_validation_error(exc)) from None
    except RealtimeError as exc:
        exc.request_id = salvage_request_id(obj)  # type: ignore[attr-defined]
        raise


def validate_payload(model: type[BaseModel], payload: dict[str, Any]) -> BaseModel:
    """Validate an envelope's payload against its type's model."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidMessage(describe_validation_error(exc, "payload")) from None


# --------------------------------------------------------------------------- encoding
_second_cache: list = [None, ""]  # [epoch second, "YYYY-MM-DDTHH:MM:SS."]


def utc_timestamp(moment: datetime | None = None) -> str:
    """UTC, millisecond precision, ``Z`` suffix: ``2026-11-21T10:30:00.123Z``.

    Every server frame carries one, so "now" is formatted once per second and only the
    milliseconds per call.
    """
    if moment is not None:  # isoformat is C: half strftime's time
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"
    now = time.time()
    second = int(now)
    if second != _second_cache[0]:
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _second_cache[0] = second
    return f"{_second_cache[1]}{int((now - second) * 1000):03d}Z"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_timestamp(value)
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# One C encoder, made once (compact, UTF-8 as is, NaN refused, ``_json_default``):
# ``JSONEncoder.encode`` builds it again on every call, a third of encoding a small
# frame. No cycle check: frames are fresh dicts (a cycle raises RecursionError).
_encode_chunks = c_make_encoder(
    None, _json_default, encode_basestring, None, ":", ",", False, False, False
)


def _dumps(value: Any) -> str:
    return "".join(_encode_chunks(value, 0))


def encode_frame(
    type: str, payload: dict[str, Any], *, request_id: str | None = None
) -> str:
    """Serialise one server frame. Call once per broadcast, never once per receiver."""
    frame: dict[str, Any] = {
        "type": type,
        "payload": payload,
        "timestamp": utc_timestamp(),
    }
    if request_id is not None:
        frame["request_id"] = request_id
    return _dumps(frame)


def encode_error(error: RealtimeError, *, request_id: str | None = None) -> str:
    return encode_frame("error", error.payload(), request_id=request_id)


def decode_server_frame(text: str) -> ServerEnvelope:
    """For clients and tests: parse a server frame, strictly."""
    return ServerEnvelope.model_validate(json.loads(text))
