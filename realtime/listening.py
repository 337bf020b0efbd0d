"""How a server process listens, for everything that starts one: ``manage.py serve``,
``make cluster`` (scripts/cluster.py) and the bench's targets. Imports nothing of
Django, so that scripts can read it without settings.

* The listen backlog: connections the kernel completes and queues until the server
  accepts them. Twisted's default is 50 and uvicorn's 2048; past it a storm's SYNs
  are dropped and the clients' kernels send them again a second later (measured: a
  ``/healthz`` probe took just over 1 s at the peak of a 1,000-client reconnect
  storm, docs/deployment.md).
* No keepalive pings of the servers' own: every socket already has the protocol's
  heartbeat (§4, realtime/heartbeat.py), which proves the client reads, not just its
  TCP stack, and closes 4003. daphne and uvicorn each pinged every 20 s on top of it:
  bench N5 (2,000 idle sockets, heartbeat every 30 s) measured the idle server at
  6.0 % of a core on daphne and 9.1 % on uvicorn with them, 4.5 % and 4.7 % without.
"""

from __future__ import annotations

BACKLOG = 2048
DAPHNE_NO_PING = 10**9  # seconds idle before daphne pings: never


def daphne_endpoint(host: str, port: int, backlog: int = BACKLOG) -> str:
    """daphne's (Twisted's) endpoint string, with the backlog named."""
    return f"tcp:port={port}:interface={host}:backlog={backlog}"


def daphne_flags(host: str, port: int) -> list[str]:
    """The ``daphne`` command's options, before the application."""
    endpoint = daphne_endpoint(host, port)
    return ["-e", endpoint, "--ping-interval", str(DAPHNE_NO_PING)]


# uvicorn's WebSocket protocol, websockets-sansio, holding less per connection
# (realtime/uvicorn_protocol.py).
UVICORN_WS = "realtime.uvicorn_protocol:LeanWebSocketProtocol"

# How the project's uvicorn speaks WebSocket: that protocol, and no pings of its own
# (0 turns them off with websockets-sansio). The bench's uvicorn target takes these.
UVICORN_WS_FLAGS = ["--ws", UVICORN_WS, "--ws-ping-interval", "0"]

# The ``uvicorn`` command's options.
UVICORN_FLAGS = ["--backlog", str(BACKLOG), *UVICORN_WS_FLAGS]
