"""A logging filter that keeps credentials out of every log line."""

from __future__ import annotations

import logging
import re

_SECRET = re.compile(
    r"(?i)((?:token|ticket|access|refresh|password|authorization)[\"']?\s*[=:]\s*"
    r"[\"']?(?:bearer\s+)?)[^\s&\"',;}]+"
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    return _JWT.sub("[redacted-jwt]", _SECRET.sub(r"\1[redacted]", text))


class RedactSecretsFilter(logging.Filter):
    """Rewrites the record's message with tokens, tickets and passwords masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
