"""A logging filter and a JSON formatter that keep credentials out of every log line."""

from __future__ import annotations

import logging
import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

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


class JsonFormatter(_JsonFormatter):
    """One JSON object per line (python-json-logger), tracebacks redacted too.

    The filter above cleans the message; an exception's text (a token in a URL that
    failed to parse, say) is only made here, so it is cleaned here.
    """

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return redact(str(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return redact(str(super().formatStack(stack_info)))
