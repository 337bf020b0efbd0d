"""The wire codec: envelope models, strict decoding, encoding (pure, no Django)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from pydantic import Field

from realtime.protocol import (
    ClientEnvelope,
    CloseCode,
    ErrorCode,
    InvalidJson,
    InvalidMessage,
    RateLimited,
    StrictModel,
    _plainly_safe,
    _problem,
    decode_frame,
    decode_server_frame,
    encode_error,
    encode_frame,
    parse_json,
    utc_timestamp,
    validate_payload,
)


def test_valid_envelope_round_trip():
    env = decode_frame(
        '{"type":"chat.send","payload":{"content":"hi"},'
        '"timestamp":"2026-11-21T10:30:00.123Z","request_id":"r-17"}'
    )
    assert env == ClientEnvelope(
        type="chat.send",
        payload={"content": "hi"},
        timestamp="2026-11-21T10:30:00.123Z",
        request_id="r-17",
    )


@pytest.mark.parametrize("type_", ["a", "chat.send", "a1.b_2.c", "x" * 64])
def test_type_names_accepted(type_):
    assert decode_frame(json.dumps({"type": type_, "payload": {}})).type == type_


@pytest.mark.parametrize(
    "type_",
    ["", "Chat", "chat.", ".chat", "1chat", "chat..send", "chat-send", "x" * 65],
)
def test_type_names_refused(type_):
    with pytest.raises(InvalidMessage, match="type"):
        decode_frame(json.dumps({"type": type_, "payload": {}}))


@pytest.mark.parametrize("rid", ["", "x" * 65, "has space", "é", 17])
def test_request_id_refused(rid):
    with pytest.raises(InvalidMessage, match="request_id"):
        decode_frame(json.dumps({"type": "a", "payload": {}, "request_id": rid}))


def test_strictness_no_coercion_no_extras():
    with pytest.raises(InvalidMessage, match="payload"):
        decode_frame('{"type":"a","payload":"{}"}')
    with pytest.raises(InvalidMessage, match="(?i)extra inputs"):
        decode_frame('{"type":"a","payload":{},"x":1}')
    with pytest.raises(InvalidMessage, match="type"):
        decode_frame('{"payload":{}}')


def test_not_json_and_nan_are_invalid_json():
    for text in ("", "{", "nope", "NaN", '{"a": -Infinity}', "{'a': 1}"):
        with pytest.raises(InvalidJson):
            decode_frame(text)


def test_limits_of_values():
    ok = {"type": "a", "payload": {"n": 2**53, "m": -(2**53), "f": 1.5}}
    assert decode_frame(json.dumps(ok)).payload["n"] == 2**53
    for bad in (2**53 + 1, -(2**53) - 1, 1e300):
        with pytest.raises(InvalidMessage, match="2\\^53"):
            decode_frame(json.dumps({"type": "a", "payload": {"n": bad}}))


def test_depth_limit_is_32_levels():
    def nested(levels: int) -> str:  # envelope, payload: levels 1 and 2; lists below
        lists = levels - 2
        return '{"type":"a","payload":{"k":' + "[" * lists + "]" * lists + "}}"

    assert decode_frame(nested(32)).type == "a"
    with pytest.raises(InvalidMessage, match="nested"):
        decode_frame(nested(33))
    with pytest.raises(InvalidMessage, match="nested"):
        decode_frame('{"type":"a","payload":' + "[" * 100_000 + "]" * 100_000 + "}")


def test_text_with_nul_or_lone_surrogates_anywhere():
    for text in (
        '{"type":"a","payload":{"k":"\\u0000"}}',
        '{"type":"a","payload":{"\\u0000":1}}',
        '{"type":"a","payload":{"k":["\\udc00"]}}',
    ):
        with pytest.raises(InvalidMessage):
            decode_frame(text)
    # A proper surrogate pair is a real character.
    env = decode_frame('{"type":"a","payload":{"k":"\\ud83d\\ude00"}}')
    assert env.payload["k"] == "😀"


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"a","payload":{"k":"v","n":[1,2.5,-3]}}',
        '{"type":"a","payload":{"k":"안녕 😀","n":123456789012345}}',
        '{"type":"a","payload":{"k":"call 1234567890123456, 1e9, \\\\u0000"}}',
        '{"type":"a","payload":{"k":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}}',
        '{"type":"a","payload":{"n":9007199254740993}}',
        '{"type":"a","payload":{"n":1e400}}',
        '{"type":"a","payload":{"n":-1.5E+300}}',
        '{"type":"a","payload":{"n":[-12345678901234567]}}',
        '{"type":"a","payload":{"n":\n12345678901234567.5}}',
        '{"type":"a","payload":{"m":"LGT01795315623123456789","n":[1,2]}}',
        '{"type":"a","payload":{"k":"\\u0000"}}',
        '{"type":"a","payload":{"k":"\\uDC00"}}',
    ],
)
def test_the_text_shortcut_never_passes_what_the_walk_refuses(text):
    """The shortcut (numbers checked while parsing, the text for the rest) may send a
    harmless frame to the walk, never the reverse."""
    obj = json.loads(text)
    parsed, numbers_ok = parse_json(text)
    assert parsed == obj
    if numbers_ok and _plainly_safe(text):
        assert _problem(obj, 1) is None
    try:
        decode_frame(text)
        refused = False
    except InvalidMessage:
        refused = True
    assert refused == (_problem(obj, 1) is not None)


def test_ordinary_frames_skip_the_walk():
    assert _plainly_safe('{"type":"chat.send","payload":{"content":"hi 안녕","n":42}}')
    assert parse_json('{"n":[42,-1.5,900719925474099,9007199254740992]}')[1]
    assert not parse_json('{"type":"a","payload":{"n":12345678901234567}}')[1]
    assert not parse_json('{"type":"a","payload":{"n":-1e16}}')[1]
    # digits in a string (a stamp, an id) are not a number
    text = '{"type":"ping","payload":{"m":"LGT01795315623123456789"}}'
    assert _plainly_safe(text) and parse_json(text)[1]
    assert not _plainly_safe('{"type":"a","payload":{"k":"\\u0000"}}')
    assert not _plainly_safe("[" * 32 + "]" * 32)


def test_invalid_message_salvages_request_id():
    with pytest.raises(InvalidMessage) as info:
        decode_frame('{"type":"a","payload":[],"request_id":"r-1"}')
    assert info.value.request_id == "r-1"
    with pytest.raises(InvalidMessage) as info:
        decode_frame('{"type":"a","payload":[],"request_id":"bad id"}')
    assert info.value.request_id is None


class Chat(StrictModel):
    content: str = Field(min_length=1, max_length=5)


def test_validate_payload_names_the_field():
    assert validate_payload(Chat, {"content": "hi"}).content == "hi"
    with pytest.raises(InvalidMessage, match=r"^payload\.content: Field required"):
        validate_payload(Chat, {})
    with pytest.raises(InvalidMessage, match=r"payload\.content"):
        validate_payload(Chat, {"content": "toolong"})
    with pytest.raises(InvalidMessage, match=r"payload\.content"):
        validate_payload(Chat, {"content": 5})


def test_encode_frame_shape_and_timestamp():
    text = encode_frame("chat.message", {"seq": 1, "text": "é"}, request_id="r-1")
    frame = json.loads(text)
    assert frame["type"] == "chat.message"
    assert frame["payload"] == {"seq": 1, "text": "é"}
    assert frame["request_id"] == "r-1"
    assert "é" in text  # not \u-escaped: smaller frames
    stamp = datetime.fromisoformat(frame["timestamp"])
    assert stamp.tzinfo is not None and frame["timestamp"].endswith("Z")
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5
    assert "request_id" not in json.loads(encode_frame("a", {}))
    assert decode_server_frame(text).type == "chat.message"


def test_encode_frame_serialises_common_types():
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    frame = json.loads(
        encode_frame(
            "a",
            {
                "at": moment,
                "id": UUID(int=1),
                "d": Decimal("1.5"),
                "s": (1, 2),
                "m": Chat(content="x"),
            },
        )
    )
    assert frame["payload"] == {
        "at": "2026-01-02T03:04:05.678Z",
        "id": "00000000-0000-0000-0000-000000000001",
        "d": "1.5",
        "s": [1, 2],
        "m": {"content": "x"},
    }
    with pytest.raises(TypeError):
        encode_frame("a", {"x": object()})
    with pytest.raises(ValueError):
        encode_frame("a", {"x": float("nan")})


def test_utc_timestamp_converts_other_zones():
    from datetime import timedelta, timezone

    moment = datetime(2026, 1, 1, 12, 0, 0, 5000, tzinfo=timezone(timedelta(hours=9)))
    assert utc_timestamp(moment) == "2026-01-01T03:00:00.005Z"


def test_error_frames():
    frame = json.loads(encode_error(RateLimited(retry_after=2.5), request_id="r"))
    assert frame["type"] == "error"
    assert frame["payload"] == {
        "code": "RATE_LIMITED",
        "message": "rate limit exceeded",
        "retry_after": 2.5,
    }
    assert frame["request_id"] == "r"


def test_codes_match_the_protocol_tables():
    assert {c.value for c in ErrorCode} == {
        "INVALID_JSON",
        "INVALID_MESSAGE",
        "UNKNOWN_TYPE",
        "MESSAGE_TOO_LARGE",
        "RATE_LIMITED",
        "FORBIDDEN",
        "NOT_FOUND",
        "UNKNOWN_REQUEST",
        "TIMEOUT",
        "INTERNAL",
    }
    assert all(c == 1000 or 4000 <= c <= 4999 for c in CloseCode)
    assert CloseCode.NO_CREDENTIAL == 4008 and CloseCode.TOO_MANY_VIOLATIONS == 4029
