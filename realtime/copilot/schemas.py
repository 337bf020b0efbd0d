"""Payload models of the copilot socket (docs/copilot.md): one per client type."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from realtime.protocol import StrictModel

MAX_QUERY_CHARS = 4000
QUERY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
SAMPLE_RATES = (8000, 16000, 24000, 48000)


class QueryPayload(StrictModel):
    text: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    context: dict[str, Any] | None = None


class QueryCancelPayload(StrictModel):
    query_id: str = Field(pattern=QUERY_ID_PATTERN)


class QueryResumePayload(StrictModel):
    query_id: str = Field(pattern=QUERY_ID_PATTERN)
    after: int = Field(default=0, ge=0)  # index of the last delta the client has


class AudioStartPayload(StrictModel):
    format: str = "pcm_s16le"
    sample_rate: int = 16000
    channels: int = 1

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != "pcm_s16le":
            raise ValueError("only pcm_s16le is supported")
        return value

    @field_validator("sample_rate")
    @classmethod
    def _rate(cls, value: int) -> int:
        if value not in SAMPLE_RATES:
            rates = ", ".join(str(rate) for rate in SAMPLE_RATES)
            raise ValueError(f"must be one of {rates}")
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only mono (1) is supported")
        return value


class AvailableDataPayload(StrictModel):
    """Reply to ``request_available_data``: what the client holds (any objects)."""

    items: list[dict[str, Any]] = Field(max_length=1000)


class ApiResultPayload(StrictModel):
    """Reply to ``request_api``: the HTTP-like status and body the client got."""

    status: int = Field(ge=100, le=599)
    body: Any = None


class HumanResponsePayload(StrictModel):
    """Reply to ``clarification_request``."""

    answer: str = Field(max_length=MAX_QUERY_CHARS)


# ------------------------------------------------------------------ server → client
# Shapes for the AsyncAPI document; a test holds them to the frames the consumer,
# runs and audio modules send.
class HeartbeatInfo(StrictModel):
    interval: float
    timeout: float
    max_missed: int


class RateLimitInfo(StrictModel):
    limit: int
    window: float
    remaining: int


class Connected(StrictModel):
    """``connected``: the greeting, with the knobs a client paces itself by."""

    user_id: int
    connection_id: str
    heartbeat: HeartbeatInfo
    rate_limit: RateLimitInfo
    resume_ttl: int


class QueryAccepted(StrictModel):
    """``query.accepted``: ``remaining`` queries in the window after this one."""

    query_id: str
    remaining: int


class QueryResumed(StrictModel):
    """``query.resumed``: ``count`` stored deltas after ``after`` follow."""

    query_id: str
    after: int
    count: int
    done: bool


class ResponseDelta(StrictModel):
    """``response.delta``: ``index`` counts 1, 2, 3… per query."""

    query_id: str
    delta: str
    index: int


class Response(StrictModel):
    """``response``: always ends an accepted query."""

    query_id: str
    text: str
    sources: list[dict[str, Any]] | None = None
    cancelled: bool | None = None
    error: str | None = None


class QueryRef(StrictModel):
    """``request_available_data``: a server → client request (``available_data``)."""

    query_id: str


class RequestApi(StrictModel):
    """``request_api``: a server → client request (``api_result``)."""

    query_id: str
    method: str
    path: str
    params: dict[str, Any]


class ClarificationRequest(StrictModel):
    """``clarification_request``: a server → client request (``human_response``)."""

    query_id: str
    question: str
    options: list[str] | None = None


class AudioStarted(StrictModel):
    """``audio.started``."""

    format: str
    sample_rate: int
    channels: int
    max_frame_bytes: int


class AudioProgress(StrictModel):
    """``audio.progress`` (every 0.5 s while audio flows) and ``audio.stopped``."""

    bytes: int
    frames: int
    ms: int
    dropped: int


class AudioVad(StrictModel):
    """``audio.vad``: the reference agent's speech hook (energy VAD, audio time)."""

    speaking: bool
    at_ms: int
