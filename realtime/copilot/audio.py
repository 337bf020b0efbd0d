"""One voice stream on a copilot socket: ``audio.start``, binary frames, ``audio.stop``.

Binary frames are checked on the receive loop (size, real-time pacing, room in the
bounded queue) and never wait; the agent's speech hook reads them from the queue in
a task of its own; another task reports ``audio.progress`` twice a second while the
counters move. So audio going up never blocks answers streaming down, and a client
that pushes audio faster than real time is refused, not buffered.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from realtime.copilot.agents import Agent
from realtime.copilot.conf import copilot_settings
from realtime.copilot.owner import Owner
from realtime.copilot.voice import (
    AudioIntake,
    AudioPacer,
    bytes_per_second,
    pcm_duration_ms,
)
from realtime.protocol import InternalError, MessageTooLarge, RateLimited

logger = logging.getLogger("realtime.copilot")

PROGRESS_EVERY = 0.5  # seconds: twice the protocol's "at least once a second"
MAX_FRAME_SECONDS = 1.0  # one binary frame carries at most this much audio
DRAIN_TIMEOUT = 5.0  # seconds audio.stop waits for the speech hook to finish


def audio_settings() -> dict[str, float]:
    return {
        "max_speed": copilot_settings.COPILOT_AUDIO_MAX_SPEED,
        "burst": copilot_settings.COPILOT_AUDIO_BURST_SECONDS,
        "queue": copilot_settings.COPILOT_AUDIO_QUEUE_CHUNKS,
    }


class VoiceIO:
    """The speech hook's ``SpeechIO``: it may send ``audio.*`` events only."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner

    async def emit(self, type: str, payload: dict[str, Any]) -> None:
        if not type.startswith("audio."):
            raise ValueError(f"a speech hook may only send audio.* events, not {type}")
        await self.owner.send_frame(type, payload)


class AudioSession:
    def __init__(self, *, owner: Owner, agent: Agent, sample_rate: int) -> None:
        knobs = audio_settings()
        self.owner = owner
        self.agent = agent
        self.sample_rate = sample_rate
        self.intake = AudioIntake(max_chunks=knobs["queue"], sample_rate=sample_rate)
        self.pacer = AudioPacer(
            sample_rate=sample_rate,
            max_speed=knobs["max_speed"],
            burst_seconds=knobs["burst"],
        )
        self.max_frame_bytes = int(bytes_per_second(sample_rate) * MAX_FRAME_SECONDS)
        self.bytes = 0
        self.frames = 0
        self.dropped = 0
        self._reported: dict[str, int] | None = None
        self.hook_task: asyncio.Task | None = None
        self.ticker: asyncio.Task | None = None

    def start(self) -> None:
        self.hook_task = self.owner.spawn(self._hook())
        self.ticker = self.owner.spawn(self._tick())

    def receive(self, data: bytes) -> None:
        """Take one binary frame, or raise the error it deserves (never waits)."""
        if len(data) > self.max_frame_bytes:
            raise MessageTooLarge(
                f"audio frame of {len(data)} bytes is over {MAX_FRAME_SECONDS:g} s "
                f"({self.max_frame_bytes} bytes)"
            )
        retry_after = self.pacer.offer(len(data))
        if retry_after:
            self.dropped += 1
            raise RateLimited(
                "audio arrives faster than real time; frame dropped",
                retry_after=retry_after,
            )
        if not self.intake.offer(data):
            self.pacer.accepted -= len(data)
            self.dropped += 1
            seconds = len(data) / bytes_per_second(self.sample_rate)
            raise RateLimited(
                "the speech hook is behind; frame dropped",
                retry_after=round(max(seconds, 0.02), 3),
            )
        self.bytes += len(data)
        self.frames += 1

    def progress(self) -> dict[str, int]:
        return {
            "bytes": self.bytes,
            "frames": self.frames,
            "ms": pcm_duration_ms(self.bytes, self.sample_rate),
            "dropped": self.dropped,
        }

    async def report(self, *, force: bool = False) -> None:
        current = self.progress()
        if force or current != self._reported:
            self._reported = current
            await self.owner.send_frame("audio.progress", current)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            await self.report()

    async def _hook(self) -> None:
        try:
            await self.agent.on_audio(self.intake, VoiceIO(self.owner))
        except Exception:
            trace = secrets.token_hex(6)
            logger.exception("speech hook failed trace=%s", trace)
            await self.owner.send_error(
                InternalError(f"speech hook failed (trace {trace})")
            )
        # Whatever the hook left unread is drained, so the queue never stays full.
        async for _chunk in self.intake:
            pass

    async def stop(self, request_id: str | None) -> None:
        """``audio.stop``: no more frames; wait for the hook, report the totals."""
        self.intake.close()
        assert self.hook_task is not None and self.ticker is not None
        try:
            await asyncio.wait_for(asyncio.shield(self.hook_task), DRAIN_TIMEOUT)
        except TimeoutError:
            logger.warning(
                "speech hook still busy %g s after audio.stop", DRAIN_TIMEOUT
            )
            self.hook_task.cancel()
        self.ticker.cancel()
        await self.report(force=True)
        await self.owner.send_frame(
            "audio.stopped", self.progress(), request_id=request_id
        )
