"""Origin validation for every socket (Cross-Site WebSocket Hijacking defence).

Channels' ``AllowedHostsOriginValidator`` checks the ``Origin`` header against
``ALLOWED_HOSTS``. Browsers always send ``Origin``, so a cross-site page is refused
(``null`` and look-alike hosts too). A client with no ``Origin`` header at all is not a
browser and cannot be hijacked this way: it is let through to authenticate like any
API client (this is what Socket.IO and Centrifugo do).
"""

from __future__ import annotations

from channels.security.websocket import AllowedHostsOriginValidator


def RealtimeOriginValidator(application):  # noqa: N802 - a wrapper, named like one
    validator = AllowedHostsOriginValidator(application)
    base_valid = validator.valid_origin

    def valid_origin(parsed_origin):
        return parsed_origin is None or base_valid(parsed_origin)

    validator.valid_origin = valid_origin
    return validator
