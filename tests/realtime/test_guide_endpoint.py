"""The endpoint docs/toolkit.md is written around, driven over sockets, and the guide's
listing of it kept identical to the code between the markers."""

from __future__ import annotations

from pathlib import Path

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from realtime.auth import RealtimeAuthMiddleware
from tests.conftest import recv, recv_type, send

# isort: split
# guide:start
from django.urls import path
from pydantic import Field

from realtime.broadcast import broadcast, publish_event
from realtime.conf import AppSettings, Knob
from realtime.consumers import EnvelopeConsumer
from realtime.dbthread import to_database_thread
from realtime.errors import Conflict
from realtime.groups import group_name
from realtime.protocol import ClientEnvelope, StrictModel, encode_frame

db = to_database_thread  # services touch the database: off the event loop

# conf.py: each knob once, with its default; operators override it by name.
board_settings = AppSettings(
    [
        Knob("GUIDE_THROTTLES", {"note.add": (5, 1.0)}, "rates", doc="per socket"),
        Knob("GUIDE_MAX_NOTES", 100, "int", minimum=1, doc="notes on one board"),
        Knob("GUIDE_GAP_WAIT", 0.5, "float", doc="seconds before a hole is read"),
    ]
)

# services.py: a dict stands in for a model with a gapless seq per board.
BOARDS: dict[str, list[tuple[int, str]]] = {}  # group → [(seq, stored frame)]


def note_add(*, board: str, text: str) -> tuple[int, str]:
    """Store a note as the board's next seq: ``(seq, its frame)``."""
    notes = BOARDS.setdefault(board, [])
    if len(notes) >= board_settings.GUIDE_MAX_NOTES:
        raise Conflict("the board is full")
    seq = len(notes) + 1
    notes.append((seq, encode_frame("note.added", {"seq": seq, "text": text})))
    return notes[-1]


def board_notes(*, board: str, after: int = 0, upto: float = float("inf")) -> list:
    """Stored ``(seq, frame)`` rows of a board with ``after < seq <= upto``."""
    return [(seq, f) for seq, f in BOARDS.get(board, ()) if after < seq <= upto]


async def board_wipe(*, board: str) -> None:
    """Empty a board; each of its sockets starts counting from seq 0 again."""
    BOARDS.pop(board, None)
    await publish_event(board, {"type": "board.wiped"})


# consumers.py and routing.py
class NoteAdd(StrictModel):
    text: str = Field(min_length=1, max_length=200)


class BoardConsumer(EnvelopeConsumer):
    endpoint = "board"
    messages = {"note.add": NoteAdd}
    events = frozenset({"board.wiped"})
    throttle_setting = "GUIDE_THROTTLES"

    async def on_connect(self) -> None:
        self.board = group_name("board", self.scope["url_route"]["kwargs"]["name"])
        await self.join_group(self.board)  # first: nothing stored later is missed
        notes = await db(board_notes)(board=self.board)
        for _, frame in notes:
            await self.send_text(frame)
        last = notes[-1][0] if notes else 0
        self.order_stream(self.board, last=last, gap_wait=board_settings.GUIDE_GAP_WAIT)

    async def on_note_add(self, payload: NoteAdd, envelope: ClientEnvelope) -> None:
        seq, frame = await db(note_add)(board=self.board, text=payload.text)
        await self.reply(envelope, "note.saved", {"seq": seq})
        await broadcast(self.board, frame, seq=seq)

    async def fill_gap(self, stream: str, after: int, upto: int) -> list:
        return await db(board_notes)(board=stream, after=after, upto=upto)

    async def event_board_wiped(self, event: dict) -> None:
        self.order_stream(self.board, last=0, gap_wait=board_settings.GUIDE_GAP_WAIT)
        await self.send_frame("board.wiped", {})


websocket_urlpatterns = [path("ws/board/<slug:name>/", BoardConsumer.as_asgi())]
# guide:end

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

application = RealtimeAuthMiddleware(URLRouter(websocket_urlpatterns))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _empty_boards():
    BOARDS.clear()
    yield
    BOARDS.clear()


async def connected(token: str, board: str = "lobby") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, f"/ws/board/{board}/?token={token}")
    assert (await comm.connect())[0]
    return comm


async def add(comm: WebsocketCommunicator, text: str, request_id: str = "r1") -> dict:
    """Send a note and return the answer to it (``note.saved`` or ``error``)."""
    await send(comm, "note.add", {"text": text}, request_id=request_id)
    while True:
        frame = await recv(comm)
        if frame.get("request_id") == request_id:
            return frame
        assert frame["type"] in ("note.added", "ping"), frame


# --------------------------------------------------------------------------- sockets
async def test_a_note_is_saved_and_broadcast_to_every_socket_of_the_board(token):
    a, b = await connected(token), await connected(token)
    other = await connected(token, "elsewhere")
    saved = await add(a, "hello")
    assert saved["type"] == "note.saved"
    assert saved["payload"] == {"seq": 1}
    for comm in (a, b):
        added = await recv_type(comm, "note.added")
        assert added["payload"] == {"seq": 1, "text": "hello"}
    assert await other.receive_nothing(timeout=0.2)
    for comm in (a, b, other):
        await comm.disconnect()


async def test_a_late_socket_gets_the_stored_notes_first(token):
    a = await connected(token)
    await add(a, "one")
    await add(a, "two", request_id="r2")
    late = await connected(token)
    assert [(await recv(late))["payload"]["seq"] for _ in range(2)] == [1, 2]
    await add(a, "three", request_id="r3")
    assert (await recv_type(late, "note.added"))["payload"]["seq"] == 3
    await a.disconnect()
    await late.disconnect()


async def test_the_domain_error_arrives_as_its_code(token, settings):
    settings.GUIDE_MAX_NOTES = 1
    comm = await connected(token)
    assert (await add(comm, "first"))["type"] == "note.saved"
    refused = await add(comm, "second", request_id="r2")
    assert refused["type"] == "error"
    assert refused["payload"]["code"] == "FORBIDDEN"
    assert refused["payload"]["message"] == "the board is full"
    assert len(BOARDS["board.lobby"]) == 1
    await comm.disconnect()


async def test_an_invalid_payload_names_its_field(token):
    comm = await connected(token)
    refused = await add(comm, "")
    assert refused["payload"]["code"] == "INVALID_MESSAGE"
    assert refused["payload"]["message"].startswith("payload.text")
    await comm.disconnect()


async def test_the_throttle_knob_is_honoured(token, fake_clock):
    comm = await connected(token)
    for n in range(5):  # GUIDE_THROTTLES' default: 5 per second
        assert (await add(comm, f"n{n}", request_id=f"r{n}"))["type"] == "note.saved"
    refused = await add(comm, "sixth", request_id="r5")
    assert refused["payload"]["code"] == "RATE_LIMITED"
    assert refused["payload"]["retry_after"] > 0
    fake_clock.advance(1.0)
    assert (await add(comm, "later", request_id="r6"))["type"] == "note.saved"
    await comm.disconnect()


async def test_operators_override_the_throttle_knob(token, settings, fake_clock):
    settings.GUIDE_THROTTLES = {"note.add": (1, 60.0)}
    comm = await connected(token)
    assert (await add(comm, "one"))["type"] == "note.saved"
    refused = await add(comm, "two", request_id="r2")
    assert refused["payload"]["code"] == "RATE_LIMITED"
    await comm.disconnect()


async def test_an_unknown_type_is_refused(token):
    comm = await connected(token)
    await send(comm, "note.delete", {"seq": 1}, request_id="x")
    error = await recv_type(comm, "error")
    assert error["payload"]["code"] == "UNKNOWN_TYPE"
    assert error["request_id"] == "x"
    await send(comm, "board.wiped", {})  # a hub event's name is no client type
    assert (await recv_type(comm, "error"))["payload"]["code"] == "UNKNOWN_TYPE"
    await comm.disconnect()


async def test_a_hole_in_the_stream_is_read_back_from_storage(token, settings):
    settings.GUIDE_GAP_WAIT = 0.05
    a, b = await connected(token), await connected(token)
    await add(a, "one")
    await recv_type(b, "note.added")
    note_add(board="board.lobby", text="stored, never broadcast")  # seq 2
    assert (await add(a, "three", request_id="r3"))["payload"] == {"seq": 3}
    got = [(await recv_type(b, "note.added"))["payload"] for _ in range(2)]
    assert got == [
        {"seq": 2, "text": "stored, never broadcast"},
        {"seq": 3, "text": "three"},
    ]
    await a.disconnect()
    await b.disconnect()


async def test_a_wipe_reaches_every_socket_and_restarts_its_order(token):
    a, b = await connected(token), await connected(token)
    await add(a, "old")
    await recv_type(b, "note.added")
    await board_wipe(board="board.lobby")
    for comm in (a, b):
        assert await recv_type(comm, "board.wiped", skip=("ping", "note.added"))
    assert (await add(a, "new", request_id="r2"))["payload"] == {"seq": 1}
    assert (await recv_type(b, "note.added"))["payload"] == {"seq": 1, "text": "new"}
    await a.disconnect()
    await b.disconnect()


# --------------------------------------------------------------------------- the guide
def guide_code() -> str:
    """The text between the markers in this file, as the guide must list it."""
    source = Path(__file__).read_text(encoding="utf-8")
    start = source.index("# guide:start\n") + len("# guide:start\n")
    return source[start : source.index("# guide:end\n")]


def test_the_guide_lists_this_endpoint_as_it_is():
    guide = (ROOT / "docs" / "toolkit.md").read_text(encoding="utf-8")
    assert "```python\n" + guide_code() + "```\n" in guide


def test_the_endpoint_stays_small():
    lines = [line.strip() for line in guide_code().splitlines()]
    code = [line for line in lines if line and not line.startswith("#")]
    assert len(code) <= 60  # what the guide promises a newcomer
