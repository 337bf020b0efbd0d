"""Voice over the copilot socket: full duplex, pacing, progress, VAD, bad input."""

from __future__ import annotations

import asyncio

import pytest

from realtime.copilot.voice import synthetic_speech
from tests.conftest import closed_with, recv, recv_type, send
from tests.copilot.agents import LONG_ANSWER
from tests.copilot.helpers import ask, open_copilot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

RATE = 16000
CHUNK_MS = 100
CHUNK = RATE * 2 * CHUNK_MS // 1000
SEGMENTS = [(400, False), (600, True), (500, False), (700, True), (800, False)]


async def start_audio(comm, **payload) -> dict:
    await send(
        comm,
        "audio.start",
        {"format": "pcm_s16le", "sample_rate": RATE, "channels": 1, **payload},
        request_id="a-1",
    )
    started = await recv_type(comm, "audio.started")
    assert started["request_id"] == "a-1"
    return started["payload"]


async def stop_audio(comm) -> tuple[list[dict], dict]:
    """``audio.stop``; the frames before ``audio.stopped`` and its payload."""
    await send(comm, "audio.stop", {}, request_id="a-2")
    frames = []
    while True:
        frame = await recv(comm)
        if frame["type"] == "audio.stopped":
            assert frame["request_id"] == "a-2"
            return frames, frame["payload"]
        frames.append(frame)


def types(frames: list[dict]) -> set[str]:
    return {frame["type"] for frame in frames}


async def test_full_duplex_audio_up_while_a_long_answer_streams_down(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.SlowAgent"
    comm, _ = await open_copilot(token)
    await start_audio(comm)
    query_id = await ask(comm, "tell me a long story")
    pcm = synthetic_speech(RATE, SEGMENTS)
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def talk():
        for n, start in enumerate(range(0, len(pcm), CHUNK)):
            # Real time: chunk n leaves at n * 100 ms, whatever the loop did meanwhile.
            await asyncio.sleep(max(0.0, began + n * CHUNK_MS / 1000 - loop.time()))
            await comm.send_to(bytes_data=pcm[start : start + CHUNK])

    talker = asyncio.ensure_future(talk())
    frames = []

    async def read_until(done) -> None:
        while not done():
            frame = await recv(comm, timeout=3)
            frame["at"] = loop.time() - began
            frames.append(frame)

    await read_until(lambda: talker.done() and "response" in types(frames))
    await talker
    await send(comm, "audio.stop", {})
    await read_until(lambda: "audio.stopped" in types(frames))
    stopped = frames.pop()["payload"]

    by_type = {}
    for frame in frames:
        by_type.setdefault(frame["type"], []).append(frame)
    assert not by_type.get("error"), by_type.get("error")
    # The answer came down complete and in order while audio went up.
    deltas = [f["payload"] for f in by_type["response.delta"]]
    assert [d["delta"] for d in deltas] == LONG_ANSWER
    assert [d["index"] for d in deltas] == list(range(1, len(LONG_ANSWER) + 1))
    assert by_type["response"][0]["payload"]["query_id"] == query_id
    # Audio went up complete, and progress was reported at least once a second.
    assert stopped == {"bytes": len(pcm), "frames": 30, "ms": 3000, "dropped": 0}
    progress_times = [0.0] + [f["at"] for f in by_type["audio.progress"]]
    gaps = [b - a for a, b in zip(progress_times, progress_times[1:], strict=False)]
    assert len(gaps) >= 5 and max(gaps) <= 1.0, progress_times
    assert by_type["audio.progress"][-1]["payload"] == stopped
    # The speech hook found the two bursts.
    vad = [f["payload"] for f in by_type["audio.vad"]]
    assert vad == [
        {"speaking": True, "at_ms": 400},
        {"speaking": False, "at_ms": 1000},
        {"speaking": True, "at_ms": 1500},
        {"speaking": False, "at_ms": 2200},
    ]
    # Deltas and audio events interleaved: neither direction waited for the other.
    first_vad = by_type["audio.vad"][0]["at"]
    assert by_type["response.delta"][0]["at"] < first_vad < by_type["response"][0]["at"]
    await comm.disconnect()


async def test_faster_than_real_time_is_rate_limited_not_buffered(token, settings):
    settings.REALTIME_MAX_VIOLATIONS = 5  # RATE_LIMITED is not a violation
    comm, _ = await open_copilot(token)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await start_audio(comm)
    pcm = synthetic_speech(RATE, [(5000, True)])
    chunks = [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]
    for chunk in chunks:  # 5 s of audio as fast as the socket takes it
        await comm.send_to(bytes_data=chunk)
    elapsed = loop.time() - began
    frames, stopped = await stop_audio(comm)
    limited = [f for f in frames if f["type"] == "error"]
    assert all(f["payload"]["code"] == "RATE_LIMITED" for f in limited)
    assert all(0 < f["payload"]["retry_after"] <= 3.0 for f in limited)
    # At most 2 s of burst allowance plus 1.5x the time that passed, in 100 ms chunks.
    assert 20 <= stopped["frames"] <= 20 + int(15 * elapsed) + 1
    assert stopped["frames"] < len(chunks)
    assert stopped["dropped"] == len(limited) == len(chunks) - stopped["frames"]
    assert stopped["bytes"] == stopped["frames"] * CHUNK
    await send(comm, "ping", {})
    assert (await recv_type(comm, "pong", skip=("ping", "audio.vad")))["type"] == "pong"
    await comm.disconnect()


async def test_slow_speech_hook_fills_its_bounded_queue(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.SlowHookAgent"
    settings.COPILOT_AUDIO_QUEUE_CHUNKS = 3
    comm, _ = await open_copilot(token)
    await start_audio(comm)
    for _ in range(10):  # 1 s of audio: within the pacing burst
        await comm.send_to(bytes_data=bytes(CHUNK))
    errors = []
    while len(errors) < 5:
        frame = await recv(comm)
        if frame["type"] == "error":
            errors.append(frame)
    assert {f["payload"]["code"] for f in errors} == {"RATE_LIMITED"}
    assert "speech hook is behind" in errors[0]["payload"]["message"]
    await comm.disconnect()


async def test_binary_frames_outside_a_stream_are_invalid_and_counted(token, settings):
    settings.REALTIME_MAX_VIOLATIONS = 3
    comm, _ = await open_copilot(token)
    for _ in range(3):
        await comm.send_to(bytes_data=b"\x00\x01")
        error = await recv_type(comm, "error")
        assert error["payload"]["code"] == "INVALID_MESSAGE"
        assert "outside audio.start" in error["payload"]["message"]
    await send(comm, "ping", {})  # three are tolerated, the socket serves
    assert (await recv_type(comm, "pong"))["type"] == "pong"
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await recv_type(comm, "error"))["payload"]["code"] == "INVALID_MESSAGE"
    assert await closed_with(comm) == 4029
    await comm.disconnect()


async def test_binary_after_audio_stop_is_invalid(token):
    comm, _ = await open_copilot(token)
    await start_audio(comm)
    await comm.send_to(bytes_data=bytes(CHUNK))
    _, stopped = await stop_audio(comm)
    assert stopped["frames"] == 1
    await comm.send_to(bytes_data=bytes(CHUNK))
    assert (await recv_type(comm, "error"))["payload"]["code"] == "INVALID_MESSAGE"
    await comm.disconnect()


async def test_oversized_audio_frame(token):
    comm, _ = await open_copilot(token)
    started = await start_audio(comm, sample_rate=8000)
    assert started == {
        "format": "pcm_s16le",
        "sample_rate": 8000,
        "channels": 1,
        "max_frame_bytes": 16000,
    }
    await comm.send_to(bytes_data=bytes(16002))
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "MESSAGE_TOO_LARGE"
    await comm.send_to(bytes_data=bytes(16000))  # exactly one second is fine
    _, stopped = await stop_audio(comm)
    assert stopped == {"bytes": 16000, "frames": 1, "ms": 1000, "dropped": 0}
    await comm.disconnect()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"format": "opus"}, "payload.format"),
        ({"sample_rate": 44100}, "payload.sample_rate"),
        ({"sample_rate": "16000"}, "payload.sample_rate"),
        ({"channels": 2}, "payload.channels"),
        ({"bitrate": 1}, "payload.bitrate"),
    ],
)
async def test_bad_audio_start(token, payload, field):
    comm, _ = await open_copilot(token)
    await send(comm, "audio.start", payload)
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert error["payload"]["message"].startswith(field)
    await comm.disconnect()


async def test_audio_start_twice_and_stop_without_start(token):
    comm, _ = await open_copilot(token)
    await send(comm, "audio.stop", {}, request_id="s-0")
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert error["request_id"] == "s-0"
    await start_audio(comm)
    await send(comm, "audio.start", {})
    error = await recv_type(comm, "error")
    assert "already started" in error["payload"]["message"]
    await stop_audio(comm)
    await start_audio(comm)  # a new stream after the stop
    _, stopped = await stop_audio(comm)
    assert stopped == {"bytes": 0, "frames": 0, "ms": 0, "dropped": 0}
    await comm.disconnect()


async def test_a_failing_speech_hook_is_reported_and_audio_still_flows(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.BadHookAgent"
    comm, _ = await open_copilot(token)
    await start_audio(comm)
    await comm.send_to(bytes_data=bytes(CHUNK))
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "INTERNAL"
    assert "speech hook failed" in error["payload"]["message"]
    await comm.send_to(bytes_data=bytes(CHUNK))
    frames, stopped = await stop_audio(comm)
    assert stopped["frames"] == 2
    assert all(f["type"] == "audio.progress" for f in frames)
    await comm.disconnect()


async def test_default_speech_hook_drains(token, settings):
    settings.COPILOT_AGENT = "tests.copilot.agents.QuickAgent"
    comm, _ = await open_copilot(token)
    await start_audio(comm)
    for _ in range(3):
        await comm.send_to(bytes_data=bytes(CHUNK))
    frames, stopped = await stop_audio(comm)
    assert stopped["frames"] == 3
    assert [f["type"] for f in frames] == ["audio.progress"]
    await comm.disconnect()


async def test_stop_waits_for_a_stuck_hook_only_so_long(token, settings, monkeypatch):
    from realtime.copilot import audio

    monkeypatch.setattr(audio, "DRAIN_TIMEOUT", 0.2)
    settings.COPILOT_AGENT = "tests.copilot.agents.SlowHookAgent"
    comm, _ = await open_copilot(token)
    await start_audio(comm)
    await comm.send_to(bytes_data=bytes(CHUNK))
    await comm.send_to(bytes_data=bytes(CHUNK))
    _, stopped = await stop_audio(comm)
    assert stopped["frames"] == 2
    await comm.disconnect()


async def test_disconnect_mid_stream_is_clean(token):
    comm, _ = await open_copilot(token)
    await start_audio(comm)
    await comm.send_to(bytes_data=synthetic_speech(RATE, [(300, True)]))
    assert (await recv_type(comm, "audio.vad"))["payload"]["speaking"] is True
    await comm.disconnect()
