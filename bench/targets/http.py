"""Tiny JSON-over-HTTP helper for adapters that set up through REST (loopback)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from .base import TargetUnavailable

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def post_json(
    url: str, body: dict, token: str | None = None, timeout: float = 15.0
) -> dict:
    """POST body as JSON, return the decoded answer; failures are TargetUnavailable."""
    if urlsplit(url).hostname not in LOOPBACK:
        raise ValueError(f"only loopback URLs may be targeted, got {url!r}")
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 - http only
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise TargetUnavailable(
            f"POST {urlsplit(url).path} → HTTP {exc.code}: {detail}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise TargetUnavailable(f"POST {urlsplit(url).path} failed: {exc!r}") from exc
