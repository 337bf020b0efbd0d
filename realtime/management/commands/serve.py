"""``manage.py serve``: daphne (or uvicorn) with this project's graceful drain.

A command rather than a hook installed by the application: daphne installs its own
SIGTERM handling (Twisted stops the reactor at once, cutting every socket with no
close frame: clients see 1006) and uvicorn's closes sockets 1012 before any
application code hears of the shutdown (its lifespan shutdown comes after). Only
the code that starts the server can put the drain first, so this command starts it
with its own signal handling: SIGTERM (or Ctrl-C) drains (``realtime.drain``), then
stops the server; a second signal stops it at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from realtime import live
from realtime.drain import Drainer
from realtime.listening import BACKLOG, DAPHNE_NO_PING, UVICORN_WS, daphne_endpoint

logger = logging.getLogger("realtime.drain")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What uvicorn still waits for after the drain (HTTP requests in flight): the
# drain's deadline has already passed, so only a short grace is left.
UVICORN_GRACE = 2


def start_reporter() -> asyncio.Task:
    """The per-process live-view reporter, on the running loop."""
    return asyncio.ensure_future(live.report_forever())


def stopped(reporter: asyncio.Task | None) -> None:
    """The server is about to stop: no more reports, out of the view now."""
    if reporter is not None:
        reporter.cancel()
    try:
        live.report_remove()
    except Exception:  # Redis gone: the report expires by itself
        logger.exception("live report removal failed")


def uvicorn_server(application: Any, *, host: str, port: int, **options: Any):
    """A ``uvicorn.Server`` whose SIGTERM/SIGINT drain before its own shutdown."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        drainer: Drainer | None = None
        reporter: asyncio.Task | None = None

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            self.loop = asyncio.get_running_loop()
            self.drainer = Drainer(stop=self.stop)
            self.reporter = start_reporter()

        def handle_exit(self, sig: int, frame: Any) -> None:
            # A signal.signal handler, run between two steps of the loop: hand the
            # work to the loop. Not recorded as uvicorn records signals, since it
            # raises them again after its shutdown and the exit would not be 0.
            if self.drainer is None:  # still starting: uvicorn's own way
                super().handle_exit(sig, frame)
                return
            self.loop.call_soon_threadsafe(self.drainer.signalled)

        def stop(self) -> None:
            stopped(self.reporter)
            self.should_exit = True

    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        lifespan="off",  # Channels' router does not speak the lifespan protocol
        ws_ping_interval=None,  # the protocol's heartbeat instead (realtime.listening)
        ws_ping_timeout=None,
        ws=UVICORN_WS,  # websockets-sansio, holding less per connection
        timeout_graceful_shutdown=UVICORN_GRACE,
        **options,
    )
    return DrainingServer(config)


def run_daphne(
    application: Any, *, host: str, port: int, backlog: int = BACKLOG, **options: Any
) -> None:
    """Daphne without its own signal handlers; ours drain, then stop the reactor."""
    from daphne.server import Server  # installs the asyncio reactor: first
    from twisted.internet import reactor

    state: dict[str, Any] = {"reporter": None, "stopped": False}

    def stop() -> None:
        if state["stopped"]:
            return
        state["stopped"] = True
        stopped(state["reporter"])
        reactor.stop()

    def ready() -> None:
        # Called by daphne once its loop is the current one, before it runs.
        loop = asyncio.get_event_loop()
        drainer = Drainer(stop=stop)
        for sig in SIGNALS:
            loop.add_signal_handler(sig, drainer.signalled)
        loop.call_soon(lambda: state.update(reporter=start_reporter()))

    server = Server(
        application=application,
        endpoints=[daphne_endpoint(host, port, backlog)],
        signal_handlers=False,
        ping_interval=DAPHNE_NO_PING,
        ready_callable=ready,
        **options,
    )
    server.run()


class Command(BaseCommand):
    help = (
        "Run the ASGI server (daphne, or uvicorn) with a graceful drain: on SIGTERM "
        "new sockets get 4013, /readyz 503, open sockets 4012 over DRAIN_WINDOW s."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to bind")
        parser.add_argument("--port", type=int, default=8000, help="port to bind")
        parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="trust X-Forwarded-For/-Proto (behind nginx)",
        )
        parser.add_argument(
            "--no-access-log", action="store_true", help="no line per request"
        )
        parser.add_argument(
            "--backlog",
            type=int,
            default=BACKLOG,
            help="connections the kernel queues before they are accepted "
            "(capped by net.core.somaxconn)",
        )
        parser.add_argument(
            "--no-compression",
            action="store_true",
            help="uvicorn: no permessage-deflate (docs/deployment.md)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        application = import_string(settings.ASGI_APPLICATION)
        host, port, server = options["host"], options["port"], options["server"]
        access_log = not options["no_access_log"]
        live.set_server(server)
        self.stdout.write(f"{server} on http://{host}:{port}/ (drain on SIGTERM)")
        if server == "uvicorn":
            uvicorn_server(
                application,
                host=host,
                port=port,
                proxy_headers=options["proxy_headers"],
                forwarded_allow_ips="*" if options["proxy_headers"] else None,
                access_log=access_log,
                backlog=options["backlog"],
                ws_per_message_deflate=not options["no_compression"],
            ).run()
            return
        from daphne.access import AccessLogGenerator

        run_daphne(
            application,
            host=host,
            port=port,
            backlog=options["backlog"],
            action_logger=AccessLogGenerator(sys.stdout) if access_log else None,
            proxy_forwarded_address_header=(
                "X-Forwarded-For" if options["proxy_headers"] else None
            ),
            proxy_forwarded_proto_header=(
                "X-Forwarded-Proto" if options["proxy_headers"] else None
            ),
        )
