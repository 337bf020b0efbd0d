"""bench.envelope_decode: every decoder reads the frame alike, and the table prints."""

from __future__ import annotations

import pytest

from bench import envelope_decode


def test_every_decoder_reads_the_frame_and_is_timed(capsys):
    results = envelope_decode.main(["--frames", "200", "--round-trips-per-s", "10000"])
    assert set(results) == {"ours", "pydantic-json", "msgspec", "json.loads"}
    assert all(micros > 0 for micros in results.values())
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["decoder", "us/frame"]
    assert [line.split()[0] for line in out[1:]] == list(results)
    assert out[1].endswith("spent")


def test_the_one_step_decoders_refuse_what_the_model_refuses():
    decoders = envelope_decode._decoders()
    blank = envelope_decode.FRAME.replace(
        "hello everyone, a question about slide 4", "   "
    )
    for name in ("ours", "pydantic-json", "msgspec"):
        with pytest.raises(Exception):  # noqa: B017 (each library's own error type)
            decoders[name](blank)
