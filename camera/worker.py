"""The camera worker's loop: capture → process_frame → publish, paced to the fps.

Reading and processing run in a thread (a device read blocks, detection is CPU work
that OpenCV does without the GIL), publishing on the event loop. A live source that
drops is reopened with backoff; the end of a file or folder ends the run. Progress
goes to ``say`` (the command's stdout): a line every ``report_every`` seconds with
the frame rate and the mean detection and encoding times, and a summary at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from camera.markers import KINDS, DetectorConfig
from camera.metrics import WorkerMeters
from camera.pipeline import FrameResult, process_frame
from camera.publisher import PublishedFrame, Publisher, PublishError, backoff_delays
from camera.sources import Frame, FrameSource, SourceDropped, SourceError


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    """What one ``runcamera`` run does; built by the command from row and flags."""

    stream_id: str
    detector: DetectorConfig
    fps: float = 30.0
    kinds: tuple[str, ...] = KINDS
    quality: int = 80
    max_frames: int | None = None
    duration: float | None = None
    report_every: float = 5.0


@dataclass(slots=True)
class Tally:
    """Counts and summed timings since ``started`` (monotonic seconds)."""

    started: float
    frames: int = 0
    dropped: int = 0
    markers: int = 0
    detect_ms: float = 0.0
    encode_ms: float = 0.0

    def add(self, result: FrameResult, published: bool) -> None:
        self.frames += 1
        self.dropped += not published
        self.markers = len(result.markers)
        self.detect_ms += result.detect_ms
        self.encode_ms += result.encode_ms

    def fps(self, now: float) -> float:
        return self.frames / max(now - self.started, 1e-9)

    def line(self, now: float) -> str:
        n = max(self.frames, 1)
        return (
            f"{self.frames} frames, {self.fps(now):.1f} fps, "
            f"detect {self.detect_ms / n:.1f} ms, encode {self.encode_ms / n:.1f} ms, "
            f"{self.markers} markers, {self.dropped} dropped"
        )


@dataclass(slots=True)
class WorkerResult:
    frames: int
    seconds: float
    reason: str
    detect_ms: float = 0.0  # means per frame
    encode_ms: float = 0.0
    dropped: int = 0


class WorkerFailed(Exception):
    """The run cannot go on (publisher refused, source unreadable)."""


class Worker:
    """One run over one opened source; ``run(stop)`` until done or ``stop`` is set."""

    def __init__(
        self,
        config: WorkerConfig,
        source: FrameSource,
        publisher: Publisher,
        *,
        say: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        meters: WorkerMeters | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.publisher = publisher
        self.say = say
        self.clock = clock
        self.meters = meters  # Prometheus figures (runcamera --metrics-port)

    async def run(self, stop: asyncio.Event) -> WorkerResult:
        cfg = self.config
        started = self.clock()
        total = Tally(started)
        window = Tally(started)
        seq = 0
        period = 1.0 / cfg.fps
        next_tick = started
        reason = "stopped"
        try:
            await self.publisher.start()
            while True:
                if stop.is_set():
                    break
                if cfg.max_frames is not None and total.frames >= cfg.max_frames:
                    reason = f"--max-frames {cfg.max_frames} reached"
                    break
                if cfg.duration is not None and self.clock() - started >= cfg.duration:
                    reason = f"--duration {cfg.duration:g} s reached"
                    break
                if self.publisher.failure:
                    raise WorkerFailed(self.publisher.failure)
                try:
                    grabbed = await asyncio.to_thread(self._grab)
                except SourceDropped as exc:
                    if not await self._reopen(exc, stop):
                        break
                    next_tick = self.clock()
                    continue
                if grabbed is None:
                    reason = "end of source"
                    break
                frame, result = grabbed
                seq += 1
                published = await self.publisher.publish(
                    PublishedFrame(
                        seq=seq,
                        captured_at=round(frame.captured_at, 6),
                        jpeg=result.jpeg,
                        poses=result.poses_payload(seq, round(frame.captured_at, 6)),
                    )
                )
                total.add(result, published)
                window.add(result, published)
                if self.meters is not None:
                    self.meters.frame(
                        detect_ms=result.detect_ms,
                        encode_ms=result.encode_ms,
                        markers=len(result.markers),
                        published=published,
                    )
                now = self.clock()
                if now - window.started >= cfg.report_every:
                    self.say(f"{cfg.stream_id}: {window.line(now)}")
                    if self.meters is not None:
                        self.meters.fps.set(window.fps(now))
                    window = Tally(now)
                next_tick += period
                delay = next_tick - now
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -period:
                    next_tick = now  # fell behind (slow source, CPU): no burst
        except PublishError as exc:
            raise WorkerFailed(str(exc)) from None
        except SourceError as exc:
            raise WorkerFailed(str(exc)) from None
        finally:
            await self.publisher.close()
            self.source.close()
        seconds = self.clock() - started
        n = max(total.frames, 1)
        self.say(f"{cfg.stream_id}: {reason}: {total.line(self.clock())}")
        return WorkerResult(
            frames=total.frames,
            seconds=seconds,
            reason=reason,
            detect_ms=total.detect_ms / n,
            encode_ms=total.encode_ms / n,
            dropped=total.dropped,
        )

    def _grab(self) -> tuple[Frame, FrameResult] | None:
        frame = self.source.read()
        if frame is None:
            return None
        result = process_frame(
            frame.image,
            config=self.config.detector,
            kinds=self.config.kinds,
            quality=self.config.quality,
        )
        return frame, result

    async def _reopen(self, exc: SourceDropped, stop: asyncio.Event) -> bool:
        """Reconnect a dropped live source with backoff; ``False`` if stopped first."""
        self.say(f"{self.config.stream_id}: source dropped: {exc}")
        for delay in backoff_delays():
            self.say(f"{self.config.stream_id}: reconnecting in {delay:.1f} s")
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return False
            except TimeoutError:
                pass
            try:
                await asyncio.to_thread(self.source.reopen)
            except SourceError as error:
                self.say(f"{self.config.stream_id}: reconnect failed: {error}")
                continue
            self.say(f"{self.config.stream_id}: source reconnected")
            return True
        return False  # pragma: no cover - backoff_delays never ends
