"""The receive path's decode step, measured: ours against one-step pydantic and msgspec.

    .venv/bin/python -m bench.envelope_decode            # 200,000 frames each
    .venv/bin/python -m bench.envelope_decode --frames 20000

The issue asked whether decoding and validating a client frame in one step (pydantic's
``model_validate_json``, or ``msgspec``) would pay on the round-trip path. Each
decoder reads the same ``chat.send`` frame into an envelope and its payload model:

- ``ours``: what ``realtime.inbound.Inbound.read`` does, ``decode_frame`` (JSON with
  the protocol's §1 checks: numbers within 2^53, no NaN, depth, lone surrogates) then
  the route's payload model;
- ``pydantic-json``: one ``model_validate_json`` on an envelope typed with the
  payload model (skips the §1 checks: not a drop-in);
- ``msgspec``: ``msgspec.json.decode`` into Structs with the same constraints
  (the blank-content check in ``__post_init__``; skips the §1 checks too);
- ``json.loads``: parsing alone, the floor of any Python JSON path.

It prints microseconds per frame and, against one round trip's server CPU (from
``--round-trips-per-s``, a figure of the same machine's ``make bench`` N2 run), the
share a decoder would save. docs/performance.md has the figures and the decision.
"""

import argparse
import json
import os
import sys
import timeit
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRAME = json.dumps(
    {
        "type": "chat.send",
        "payload": {
            "content": "hello everyone, a question about slide 4",
            "client_id": "c-1",
        },
        "request_id": "r-42",
        "timestamp": "2026-12-03T12:00:00.000Z",
    }
)


Content = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class ChatSendStruct(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    content: Content
    client_id: Id | None = None

    def __post_init__(self) -> None:
        if not self.content.strip():
            raise ValueError("content must not be blank")


class EnvelopeStruct(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    type: str
    payload: ChatSendStruct
    timestamp: str | None = None
    request_id: Id | None = None


def _decoders() -> dict[str, Any]:
    """Each decoder: frame text → (type, content)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from pydantic import BaseModel, ConfigDict

    from realtime.protocol import RequestId, decode_frame, validate_payload
    from sessions_app.payloads import ChatSend

    def ours(text: str) -> tuple[str, str]:
        envelope = decode_frame(text)
        payload = validate_payload(ChatSend, envelope.payload)
        return envelope.type, payload.content

    class ChatEnvelope(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
        type: Literal["chat.send"]
        payload: ChatSend
        timestamp: str | None = None
        request_id: RequestId | None = None

    def pydantic_json(text: str) -> tuple[str, str]:
        envelope = ChatEnvelope.model_validate_json(text)
        return envelope.type, envelope.payload.content

    decoder = msgspec.json.Decoder(EnvelopeStruct)

    def msgspec_decode(text: str) -> tuple[str, str]:
        envelope = decoder.decode(text)
        return envelope.type, envelope.payload.content

    def plain(text: str) -> tuple[str, str]:
        obj = json.loads(text)
        return obj["type"], obj["payload"]["content"]

    return {
        "ours": ours,
        "pydantic-json": pydantic_json,
        "msgspec": msgspec_decode,
        "json.loads": plain,
    }


def measure(frames: int, repeats: int = 5) -> dict[str, float]:
    """Microseconds per frame for each decoder: the best of ``repeats`` runs."""
    results = {}
    for name, decode in _decoders().items():
        assert decode(FRAME) == ("chat.send", json.loads(FRAME)["payload"]["content"])
        best = min(
            timeit.repeat(lambda d=decode: d(FRAME), number=frames, repeat=repeats)
        )
        results[name] = best / frames * 1e6
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument(
        "--round-trips-per-s",
        type=float,
        default=7397.0,
        help="one server core's round trips per second (N2 on daphne): the share "
        "column is the decode saving against 1/this",
    )
    args = ap.parse_args(argv)
    results = measure(args.frames)
    budget = 1e6 / args.round_trips_per_s
    ours = results["ours"]
    print(f"{'decoder':<14} {'us/frame':>9} {'vs ours':>8} {'of a round trip':>16}")
    for name, micros in results.items():
        saved = (ours - micros) / budget * 100
        print(
            f"{name:<14} {micros:9.2f} {micros / ours:7.2f}x {saved:+15.1f}%"
            if name != "ours"
            else f"{name:<14} {micros:9.2f} {1:7.2f}x {micros / budget:15.1%} spent"
        )
    return results


if __name__ == "__main__":
    main()
