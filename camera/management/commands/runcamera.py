"""``manage.py runcamera <stream> --source ...``: capture, find markers, publish.

Thin: flags are checked and merged into the stream's row (created if missing; flags
override what it holds and are saved), the source is opened, and ``camera.worker``
does the rest. Every operator mistake is a ``CommandError`` saying what to fix.
With ``--token`` the database is not used at all (a machine without it).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from prometheus_client import start_http_server

from camera.markers import DICTIONARIES, KINDS, CameraModel, DetectorConfig
from camera.metrics import WorkerMeters
from camera.models import Stream, slug_validator
from camera.publisher import LayerPublisher, NullPublisher, Publisher, SocketPublisher
from camera.selectors import stream_get
from camera.services import stream_configure
from camera.sources import SourceError, open_source
from camera.worker import Worker, WorkerConfig, WorkerFailed

STOP_GRACE_S = 3.0  # after SIGINT/SIGTERM, the frame in hand may take this long


class Command(BaseCommand):
    help = (
        "Capture a camera stream, find its ArUco markers and publish frames and "
        "poses to the stream's viewers (docs/camera.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("stream", help="stream id (slug); created if missing")
        parser.add_argument(
            "--source",
            help="device index (0), video file, image folder, rtsp/http(s) URL, or "
            "'synthetic[:2-4]'; default: the stream's saved source",
        )
        parser.add_argument("--fps", type=float, help="frames per second to publish")
        parser.add_argument("--width", type=int)
        parser.add_argument("--height", type=int)
        parser.add_argument("--dictionary", help="ArUco dictionary, e.g. DICT_4X4_50")
        parser.add_argument(
            "--marker-length", type=float, help="printed marker side in metres"
        )
        parser.add_argument("--camera-matrix", metavar="FX,FY,CX,CY")
        parser.add_argument("--dist-coeffs", metavar="K1,K2,P1,P2,K3")
        parser.add_argument("--kinds", metavar="raw,annotated")
        parser.add_argument("--title")
        parser.add_argument("--loop", action="store_true", help="replay files")
        parser.add_argument("--quality", type=int, default=80, help="JPEG 1-100")
        parser.add_argument("--max-frames", type=int, help="stop after N frames")
        parser.add_argument("--duration", type=float, help="stop after S seconds")
        parser.add_argument(
            "--server",
            metavar="WS_URL",
            help="publish over this server's ingest socket (ws://host:port)",
        )
        parser.add_argument(
            "--token", help="the stream's publish token (with --server; no database)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="capture and detect, publish nothing"
        )
        parser.add_argument("--report-every", type=float, default=5.0, metavar="S")
        parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="S")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=0,
            metavar="N",
            help="serve Prometheus metrics (fps, detection, encoding) on this port; "
            "0: none",
        )
        parser.add_argument(
            "--metrics-addr",
            default="127.0.0.1",
            metavar="ADDR",
            help="address --metrics-port listens on",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["stream"]
        try:
            slug_validator(slug)
        except ValidationError:
            raise CommandError(
                f"stream id {slug!r}: use 1-64 letters, digits, '-' or '_'"
            ) from None
        _check_numbers(options)
        changes = _row_changes(options)
        url = _ingest_url(slug, options)
        # Nothing is written before the source opens: a typo in --source must not
        # end up saved in the row.
        stream = self._preview(slug, changes, options)
        source = options["source"] or stream.source
        if not source:
            raise CommandError(
                f"stream {slug!r} has no saved source: pass --source (a device index "
                "like 0, a file, a folder, a URL or 'synthetic')"
            )
        detector = DetectorConfig(
            camera=stream.camera_model(),
            dictionary=stream.dictionary,
            marker_length_m=stream.marker_length_m,
        )
        try:
            frames = open_source(
                source,
                width=stream.width,
                height=stream.height,
                fps=stream.fps,
                loop=options["loop"],
                config=detector,
            )
        except SourceError as exc:
            raise CommandError(f"--source {source}: {exc}") from None
        try:
            if not (options["dry_run"] or url or settings.REDIS_URL):
                raise CommandError(
                    "REDIS_URL is not set, so the channel layer is in-memory and this "
                    "process cannot reach the server's viewers: pass --server "
                    "ws://127.0.0.1:8000 (the server's address) to publish over its "
                    "ingest socket, or set REDIS_URL to the server's Redis (or use "
                    "--dry-run)"
                )
            if not options["token"]:
                stream = self._save(slug, {**changes, "source": source})
            meters = self._serve_metrics(slug, options)
        except BaseException:
            frames.close()
            raise
        publisher, via = self._publisher(slug, stream, url, options)
        config = WorkerConfig(
            stream_id=slug,
            detector=detector,
            fps=stream.fps,
            kinds=tuple(stream.kinds),
            quality=options["quality"],
            max_frames=options["max_frames"],
            duration=options["duration"],
            report_every=options["report_every"],
        )
        self.say(
            f"{slug}: {frames.description} at {stream.width}x{stream.height}, "
            f"{stream.fps:g} fps, kinds {','.join(stream.kinds)}, "
            f"{stream.dictionary} {stream.marker_length_m:g} m markers, {via}"
        )
        worker = Worker(config, frames, publisher, say=self.say, meters=meters)
        try:
            asyncio.run(self._run(worker))
        except WorkerFailed as exc:
            raise CommandError(f"{slug}: {exc}") from None
        except asyncio.CancelledError:
            self.say(f"{slug}: stopped")

    def _serve_metrics(self, slug: str, options: dict) -> WorkerMeters | None:
        """This worker's own metrics server (prometheus-client's), if asked for."""
        port, addr = options["metrics_port"], options["metrics_addr"]
        if not port:
            return None
        try:
            start_http_server(port, addr=addr)
        except OSError as exc:
            raise CommandError(
                f"--metrics-port {port}: cannot listen on {addr}:{port} ({exc}); "
                "pick a free port"
            ) from None
        self.say(f"{slug}: metrics on http://{addr}:{port}/metrics")
        return WorkerMeters(slug)

    def say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _preview(self, slug: str, changes: dict[str, Any], options: dict) -> Stream:
        """The stream as this run will use it: the row (or a new one) with the
        flags applied, checked, not saved. With --token there is no row."""
        if options["token"]:
            stream = Stream(slug=slug, **changes)
            stream.publish_token = options["token"]
            exclude = ["publish_token"]
        else:
            stream = stream_get(slug=slug) or Stream(slug=slug)
            for field, value in changes.items():
                setattr(stream, field, value)
            exclude = ["slug", "publish_token"]  # uniqueness: checked when saved
        try:
            stream.clean_fields(exclude=exclude)
            stream.clean()
        except ValidationError as exc:
            raise CommandError(_describe(exc)) from None
        return stream

    def _save(self, slug: str, changes: dict[str, Any]) -> Stream:
        stream, created = stream_configure(slug=slug, changes=changes)  # checked
        if created:
            self.say(f"{slug}: created the stream")
        return stream

    def _publisher(
        self, slug: str, stream: Stream, url: str | None, options: dict
    ) -> tuple[Publisher, str]:
        if options["dry_run"]:
            return NullPublisher(), "dry run: publishing nothing"
        if url:
            publisher = SocketPublisher(
                url,
                stream.publish_token,
                connect_timeout=options["connect_timeout"],
                say=self.say,
            )
            return publisher, f"publishing over {url}"
        return LayerPublisher(slug, warn=self.say), "publishing to the group on Redis"

    async def _run(self, worker: Worker) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()

        def on_signal(signum: int) -> None:
            if stop.is_set():  # a second Ctrl-C: now
                main.cancel()
                return
            self.say(f"{signal.Signals(signum).name}: stopping")
            stop.set()
            loop.call_later(STOP_GRACE_S, main.cancel)

        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (or not a Unix loop): no handlers
        try:
            await worker.run(stop)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


def _ingest_url(slug: str, options: dict) -> str | None:
    """The ingest socket's URL from --server, or ``None`` without it."""
    server = options["server"]
    if options["token"] and not server:
        raise CommandError("--token goes with --server (the server's address)")
    if not server:
        return None
    base = server.rstrip("/")
    if base.startswith(("http://", "https://")):
        base = "ws" + base[4:]
    if not base.startswith(("ws://", "wss://")):
        raise CommandError(
            f"--server {server}: give the server's ws:// or wss:// address, "
            "e.g. ws://127.0.0.1:8000"
        )
    return f"{base}/ws/streams/{slug}/publish/"


def _check_numbers(options: dict) -> None:
    positive = {
        "--fps": options["fps"],
        "--width": options["width"],
        "--height": options["height"],
        "--marker-length": options["marker_length"],
        "--max-frames": options["max_frames"],
        "--duration": options["duration"],
        "--report-every": options["report_every"],
        "--connect-timeout": options["connect_timeout"],
    }
    for flag, value in positive.items():
        if value is not None and not value > 0:
            raise CommandError(f"{flag} must be a positive number, got {value:g}")
    if not 0 <= options["metrics_port"] <= 65535:
        raise CommandError(f"--metrics-port is 0-65535, got {options['metrics_port']}")
    if not 1 <= options["quality"] <= 100:
        raise CommandError(f"--quality is 1-100, got {options['quality']}")


def _row_changes(options: dict) -> dict[str, Any]:
    """The flags given, as Stream fields (what the command saves to the row)."""
    changes: dict[str, Any] = {
        field: options[flag]
        for flag, field in (
            ("fps", "fps"),
            ("width", "width"),
            ("height", "height"),
            ("marker_length", "marker_length_m"),
            ("title", "title"),
        )
        if options[flag] is not None
    }
    if options["dictionary"] is not None:
        if options["dictionary"] not in DICTIONARIES:
            examples = ", ".join(sorted(name for name in DICTIONARIES if "4X4" in name))
            raise CommandError(
                f"--dictionary {options['dictionary']}: unknown ArUco dictionary; "
                f"e.g. {examples} (all of cv2.aruco's DICT_* names work)"
            )
        changes["dictionary"] = options["dictionary"]
    if options["kinds"] is not None:
        kinds = [k.strip() for k in options["kinds"].split(",") if k.strip()]
        if not kinds or any(kind not in KINDS for kind in kinds):
            raise CommandError(
                f"--kinds {options['kinds']}: a comma-separated list of "
                f"{', '.join(KINDS)}"
            )
        changes["kinds"] = list(dict.fromkeys(kinds))
    if options["dist_coeffs"] is not None:
        try:
            dist = CameraModel.parse("1,1,0,0", options["dist_coeffs"]).dist
        except ValueError as exc:
            raise CommandError(f"--dist-coeffs: {exc}") from None
        changes["dist_coeffs"] = list(dist)
    if options["camera_matrix"] is not None:
        try:
            model = CameraModel.parse(options["camera_matrix"])
        except ValueError as exc:
            raise CommandError(f"--camera-matrix: {exc}") from None
        changes["camera_matrix"] = {
            "fx": model.fx,
            "fy": model.fy,
            "cx": model.cx,
            "cy": model.cy,
        }
    return changes


def _describe(error: ValidationError) -> str:
    """``field: message`` for each field ``full_clean`` refused."""
    return "; ".join(
        f"{field}: {' '.join(messages)}"
        for field, messages in error.message_dict.items()
    )
