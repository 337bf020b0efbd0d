"""Origin validation for every socket (Cross-Site WebSocket Hijacking defence).

Channels' ``AllowedHostsOriginValidator`` checks the ``Origin`` header against
``ALLOWED_HOSTS``. Browsers always send ``Origin``, so a cross-site page is refused
(``null`` and look-alike hosts too). A client with no ``Origin`` header at all is not a
browser and cannot be hijacked this way: it is let through to authenticate like any
API client (this is what Socket.IO and Centrifugo do).

``origin_check`` is the check alone, for ``realtime.entry``; ``RealtimeOriginValidator``
the same as a Channels middleware, for an application composed of layers.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import ParseResult, urlparse

from channels.security.websocket import AllowedHostsOriginValidator


def RealtimeOriginValidator(application):  # noqa: N802 - a wrapper, named like one
    validator = AllowedHostsOriginValidator(application)
    base_valid = validator.valid_origin

    def valid_origin(parsed_origin: ParseResult | None) -> bool:
        return parsed_origin is None or base_valid(parsed_origin)

    validator.valid_origin = valid_origin
    return validator


def origin_check() -> Callable[[dict], bool]:
    """Whether a socket's scope may go on: ``ALLOWED_HOSTS`` as of now, as
    ``RealtimeOriginValidator`` reads them when it is made."""
    valid_origin = RealtimeOriginValidator(None).valid_origin

    def origin_allowed(scope: dict) -> bool:
        parsed = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":  # the last one counts, as in Channels
                parsed = urlparse(value.decode("latin1"))
        return valid_origin(parsed)

    return origin_allowed
