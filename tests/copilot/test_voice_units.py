"""Pure parts of voice input: pacing, the bounded intake, the energy VAD."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from realtime.copilot.voice import (
    AudioIntake,
    AudioPacer,
    EnergyVAD,
    VadEvent,
    pcm_duration_ms,
    synthetic_speech,
    window_dbfs,
)

RATE = 16000
SECOND = RATE * 2  # bytes


def test_duration_of_pcm():
    assert pcm_duration_ms(SECOND, RATE) == 1000
    assert pcm_duration_ms(3201, RATE) == 100  # a trailing odd byte is no sample


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_pacer_accepts_real_time_forever():
    clock = FakeClock()
    pacer = AudioPacer(sample_rate=RATE, clock=clock)
    for _ in range(600):  # a minute of 100 ms chunks at exactly real time
        clock.now += 0.1
        assert pacer.offer(SECOND // 10) == 0.0


def test_pacer_allows_a_burst_then_refuses_with_retry_after():
    clock = FakeClock()
    pacer = AudioPacer(sample_rate=RATE, max_speed=1.5, burst_seconds=2.0, clock=clock)
    for _ in range(20):  # 2 s of audio at once: the burst allowance
        assert pacer.offer(SECOND // 10) == 0.0
    retry = pacer.offer(SECOND // 10)
    assert retry == pytest.approx(0.1 / 1.5, abs=1e-3)
    assert pacer.accepted == 2 * SECOND  # a refused chunk is not counted
    clock.now += retry
    assert pacer.offer(SECOND // 10) == 0.0


def test_pacer_caps_the_speed():
    clock = FakeClock()
    pacer = AudioPacer(sample_rate=RATE, max_speed=1.5, burst_seconds=0.0, clock=clock)
    accepted = 0
    for _ in range(1000):  # 10 s of wall time, offered at 10x real time
        clock.now += 0.01
        if pacer.offer(SECOND // 100 * 10) == 0.0:
            accepted += 1
    assert accepted == pytest.approx(150, abs=1)  # 15 s of audio in 10 s


async def test_intake_is_bounded_and_ends_after_close():
    intake = AudioIntake(max_chunks=2, sample_rate=RATE)
    assert intake.offer(b"a") and intake.offer(b"b")
    assert not intake.offer(b"c")  # full: refused, never waits
    assert len(intake) == 2
    got = [await intake.__anext__()]
    assert intake.offer(b"d")
    intake.close()
    assert not intake.offer(b"e")  # closed
    got += [chunk async for chunk in intake]
    assert got == [b"a", b"b", b"d"]


async def test_intake_wakes_a_waiting_reader():
    intake = AudioIntake(max_chunks=4, sample_rate=RATE)

    async def read():
        return [chunk async for chunk in intake]

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0)
    intake.offer(b"x")
    await asyncio.sleep(0)
    intake.close()
    assert await asyncio.wait_for(reader, 1) == [b"x"]


def test_window_levels():
    loud = (np.full(320, 16384, dtype="<i2")).tobytes()  # half scale: -6 dBFS
    silent = bytes(320 * 2)
    levels = window_dbfs(loud + silent + b"\x01", 320)
    assert levels[0] == pytest.approx(-6.02, abs=0.01)
    assert levels[1] == -120.0
    assert len(levels) == 2
    assert len(window_dbfs(b"\x00" * 10, 320)) == 0


SEGMENTS = [(400, False), (600, True), (500, False), (700, True), (800, False)]
EXPECTED = [
    VadEvent(True, 400),
    VadEvent(False, 1000),
    VadEvent(True, 1500),
    VadEvent(False, 2200),
]


@pytest.mark.parametrize("chunk_ms", [7, 20, 100, 3000])
def test_vad_finds_the_bursts_whatever_the_chunking(chunk_ms):
    pcm = synthetic_speech(RATE, SEGMENTS)
    assert len(pcm) == 3 * SECOND
    vad = EnergyVAD(RATE)
    step = RATE * 2 * chunk_ms // 1000 + (chunk_ms % 2)  # odd sizes split samples
    events = []
    for start in range(0, len(pcm), step):
        events += vad.feed(pcm[start : start + step])
    events += vad.flush()
    assert events == EXPECTED


def test_vad_ignores_clicks_shorter_than_start_ms():
    pcm = synthetic_speech(RATE, [(200, False), (40, True), (400, False)])
    vad = EnergyVAD(RATE)
    assert vad.feed(pcm) + vad.flush() == []


def test_vad_hysteresis_keeps_a_fading_voice():
    loud = synthetic_speech(RATE, [(300, True)], amplitude=0.3)
    fading = synthetic_speech(RATE, [(300, True)], amplitude=0.015)  # about -40 dBFS
    vad = EnergyVAD(RATE)
    assert vad.feed(loud + fading) == [VadEvent(True, 0)]  # between the thresholds
    assert vad.speaking
    assert vad.flush() == [VadEvent(False, 600)]  # closed at the end of the stream


def test_vad_flush_dates_the_stop_at_the_quiet_run():
    pcm = synthetic_speech(RATE, [(300, True), (100, False)])
    vad = EnergyVAD(RATE)
    assert vad.feed(pcm) == [VadEvent(True, 0)]
    assert vad.flush() == [VadEvent(False, 300)]
    assert vad.flush() == []


def test_vad_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="stop_db"):
        EnergyVAD(RATE, start_db=-50, stop_db=-40)


def test_synthetic_speech_of_nothing():
    assert synthetic_speech(RATE, []) == b""
