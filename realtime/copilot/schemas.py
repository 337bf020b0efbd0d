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
