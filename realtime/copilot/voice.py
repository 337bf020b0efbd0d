"""Voice input: bounded intake, real-time pacing and an energy VAD on int16 PCM.

Everything here is independent of the socket: ``AudioPacer`` decides whether a chunk
is within real time plus a burst allowance, ``AudioIntake`` is the bounded queue
between the receive loop and the agent's speech hook, and ``EnergyVAD`` turns PCM into
speech start/stop events. The consumer glue lives in ``realtime.copilot.audio``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BYTES_PER_SAMPLE = 2  # pcm_s16le, mono
SILENCE_DBFS = -120.0  # what digital silence reads as (log of zero avoided)


def bytes_per_second(sample_rate: int) -> int:
    return sample_rate * BYTES_PER_SAMPLE


def pcm_duration_ms(nbytes: int, sample_rate: int) -> int:
    """Milliseconds of audio in ``nbytes`` of mono int16 PCM."""
    return (nbytes // BYTES_PER_SAMPLE) * 1000 // sample_rate


# --------------------------------------------------------------------------- pacing
class AudioPacer:
    """At most ``max_speed`` x real time, plus ``burst_seconds`` of audio up front.

    A client streaming from a microphone sends at 1x and is never refused; network
    jitter is absorbed by the burst allowance; a client pushing a file as fast as it
    can is refused once it is ``burst_seconds`` ahead, so the server never buffers more
    than that. Refused chunks are not counted.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        max_speed: float = 1.5,
        burst_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = bytes_per_second(sample_rate)
        self.max_speed = float(max_speed)
        self.burst = float(burst_seconds)
        self.clock = clock
        self.started = clock()
        self.accepted = 0  # bytes

    def offer(self, nbytes: int) -> float:
        """0.0 when the chunk is accepted (and counted), else seconds to wait."""
        elapsed = self.clock() - self.started
        wanted = (self.accepted + nbytes) / self.rate  # seconds of audio
        allowed = self.burst + self.max_speed * elapsed
        if wanted <= allowed:
            self.accepted += nbytes
            return 0.0
        return round(max((wanted - self.burst) / self.max_speed - elapsed, 0.001), 3)


# --------------------------------------------------------------------------- intake
class AudioIntake:
    """A bounded FIFO of audio chunks, read as an async iterator by the speech hook.

    ``offer`` never waits: when the hook is ``max_chunks`` behind, the chunk is refused
    (the receive loop must not block and memory must not grow).
    """

    def __init__(self, *, max_chunks: int, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.format = "pcm_s16le"
        self.channels = 1
        self._chunks: deque[bytes] = deque()
        self._max = int(max_chunks)
        self._ready = asyncio.Event()
        self.closed = False

    def __len__(self) -> int:
        return len(self._chunks)

    def offer(self, chunk: bytes) -> bool:
        if self.closed or len(self._chunks) >= self._max:
            return False
        self._chunks.append(chunk)
        self._ready.set()
        return True

    def close(self) -> None:
        """No more audio: the iterator ends once the queued chunks are read."""
        self.closed = True
        self._ready.set()

    def __aiter__(self) -> AudioIntake:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._chunks:
                return self._chunks.popleft()
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()


# --------------------------------------------------------------------------- VAD
def window_dbfs(pcm: bytes, samples_per_window: int) -> np.ndarray:
    """RMS level in dBFS of each whole window of ``pcm`` (mono int16 little-endian)."""
    count = len(pcm) // BYTES_PER_SAMPLE // samples_per_window
    if count == 0:
        return np.zeros(0)
    used = count * samples_per_window
    samples = np.frombuffer(pcm, dtype="<i2", count=used).astype(np.float64) / 32768.0
    rms = np.sqrt(np.mean(samples.reshape(count, samples_per_window) ** 2, axis=1))
    with np.errstate(divide="ignore"):
        levels = 20.0 * np.log10(rms)
    return np.maximum(levels, SILENCE_DBFS)


@dataclass(frozen=True)
class VadEvent:
    speaking: bool
    at_ms: int  # audio time from the start of the stream


class EnergyVAD:
    """Energy voice-activity detection with hysteresis, fed chunk by chunk.

    Speech starts when windows stay at or above ``start_db`` for ``start_ms`` (the
    event is dated at the first loud window) and stops when they stay below ``stop_db``
    for ``hangover_ms`` (dated at the first quiet one). Levels between the two
    thresholds keep the current state, so a voice fading between syllables does not
    flap. 20 ms windows: short enough for turn-taking, long enough to cover a pitch
    period of a low voice (~10 ms).
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        window_ms: int = 20,
        start_db: float = -35.0,
        stop_db: float = -45.0,
        start_ms: int = 60,
        hangover_ms: int = 200,
    ) -> None:
        if stop_db > start_db:
            raise ValueError("stop_db must not exceed start_db")
        self.window_ms = window_ms
        self.samples_per_window = sample_rate * window_ms // 1000
        self.window_bytes = self.samples_per_window * BYTES_PER_SAMPLE
        self.start_db = start_db
        self.stop_db = stop_db
        self.start_windows = max(1, math.ceil(start_ms / window_ms))
        self.stop_windows = max(1, math.ceil(hangover_ms / window_ms))
        self.speaking = False
        self._buffer = b""
        self._index = 0  # windows seen
        self._run = 0  # consecutive windows pointing at a state change
        self._run_start = 0

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Transitions found in ``pcm`` (appended to what came before)."""
        data = self._buffer + pcm
        whole = len(data) // self.window_bytes * self.window_bytes
        self._buffer = data[whole:]
        events = []
        for level in window_dbfs(data[:whole], self.samples_per_window):
            event = self._step(float(level))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[VadEvent]:
        """At the end of the stream: close an open speech segment."""
        if not self.speaking:
            return []
        self.speaking = False
        at_ms = self._run_start if self._run else self._index * self.window_ms
        self._run = 0
        return [VadEvent(False, at_ms)]

    def _step(self, level: float) -> VadEvent | None:
        now_ms = self._index * self.window_ms
        self._index += 1
        if self.speaking:
            changing, needed = level < self.stop_db, self.stop_windows
        else:
            changing, needed = level >= self.start_db, self.start_windows
        if not changing:
            self._run = 0
            return None
        if self._run == 0:
            self._run_start = now_ms
        self._run += 1
        if self._run < needed:
            return None
        self._run = 0
        self.speaking = not self.speaking
        return VadEvent(self.speaking, self._run_start)


def synthetic_speech(
    sample_rate: int,
    segments: list[tuple[int, bool]],
    *,
    amplitude: float = 0.3,
    noise: float = 0.001,
    frequency: float = 220.0,
    seed: int = 7,
) -> bytes:
    """Test and demo signal: ``[(duration_ms, voiced), ...]`` as int16 PCM.

    Voiced parts are a harmonic tone (a crude vowel) at ``amplitude``; the rest is
    faint noise, so the detector sees a realistic floor rather than digital zero.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for duration_ms, voiced in segments:
        n = sample_rate * duration_ms // 1000
        t = np.arange(n) / sample_rate
        part = rng.normal(0.0, noise, n)
        if voiced:
            tone = sum(np.sin(2 * np.pi * frequency * k * t) / k for k in (1, 2, 3))
            part += amplitude * tone / 1.5
        parts.append(part)
    signal = np.clip(np.concatenate(parts) if parts else np.zeros(0), -1.0, 1.0)
    return (signal * 32767).astype("<i2").tobytes()
