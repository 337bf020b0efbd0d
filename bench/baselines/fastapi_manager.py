"""The seed's design: FastAPI, sockets per room, a loop of send_text(json.dumps).

Run: `uvicorn bench.baselines.fastapi_manager:app --host 127.0.0.1 --port 8001`.
It speaks the project's envelope (PROTOCOL.md §1) for the parts the benchmark uses:
/ws/sessions/<code>/ (session.welcome, chat.send → chat.message to the whole room,
ping → pong) and /ws/streams/<id>/ + /ws/streams/<id>/publish/ (every frame to every
viewer, no flow control). No database, no authentication: `?participant_id=&nickname=`
name the socket.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


def now_iso() -> str:
    """UTC timestamp with millisecond precision and a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(type_: str, payload: dict, request_id: str | None = None) -> dict:
    """Build a server → client envelope."""
    msg = {"type": type_, "payload": payload, "timestamp": now_iso()}
    if request_id:
        msg["request_id"] = request_id
    return msg


class ConnectionManager:
    """The seed's manager: sockets per room; a broadcast is a sequential loop."""

    def __init__(self) -> None:
        self.active_connections: dict[str, dict[str, WebSocket]] = {}
        self.seq: dict[str, int] = defaultdict(int)

    async def connect(self, websocket: WebSocket, room: str, member_id: str) -> None:
        """Accept and register."""
        await websocket.accept()
        self.active_connections.setdefault(room, {})[member_id] = websocket

    def disconnect(self, room: str, member_id: str) -> None:
        """Forget a socket; drop the room when empty."""
        members = self.active_connections.get(room)
        if members is not None:
            members.pop(member_id, None)
            if not members:
                del self.active_connections[room]

    async def broadcast(
        self, room: str, message: dict, exclude: str | None = None
    ) -> None:
        """Send message to everyone in room, one await at a time (as the seed does)."""
        dead = []
        for member_id, websocket in list(self.active_connections.get(room, {}).items()):
            if member_id == exclude:
                continue
            try:
                await websocket.send_text(json.dumps(message))
            except Exception:
                dead.append(member_id)
        for member_id in dead:
            self.disconnect(room, member_id)


manager = ConnectionManager()
frames: dict[str, dict[str, WebSocket]] = defaultdict(dict)


@app.websocket("/ws/sessions/{code}/")
async def session_socket(websocket: WebSocket, code: str) -> None:
    """Live-session chat: welcome, then chat.send → chat.message to all, ping → pong."""
    participant_id = websocket.query_params.get("participant_id") or str(uuid.uuid4())
    nickname = websocket.query_params.get("nickname") or participant_id[:8]
    room = f"session:{code}"
    await manager.connect(websocket, room, participant_id)
    you = {"participant_id": participant_id, "nickname": nickname, "role": "guest"}
    session = {"code": code, "title": code, "status": "open"}
    await websocket.send_text(
        json.dumps(
            envelope(
                "session.welcome",
                {"session": session, "you": you, "last_seq": manager.seq[room]},
            )
        )
    )
    # The seed's connect() tells the rest of the room (broadcast_to_session with
    # exclude_participant): W2 measures that cost on every server alike.
    await manager.broadcast(
        room,
        envelope(
            "participant.joined",
            {"participant_id": participant_id, "nickname": nickname},
        ),
        exclude=participant_id,
    )
    try:
        while True:
            data = await websocket.receive_text()
            try:
                msg = json.loads(data)
                type_, payload = msg["type"], msg.get("payload") or {}
            except (ValueError, KeyError, TypeError):
                err = {
                    "code": "INVALID_JSON",
                    "message": "not a JSON envelope",
                    "retry_after": None,
                }
                await websocket.send_text(json.dumps(envelope("error", err)))
                continue
            rid = msg.get("request_id")
            if type_ == "chat.send":
                manager.seq[room] += 1
                out = {
                    "seq": manager.seq[room],
                    "message_id": str(uuid.uuid4()),
                    "participant_id": participant_id,
                    "nickname": nickname,
                    "content": str(payload.get("content", "")),
                    "created_at": now_iso(),
                }
                if payload.get("client_id"):
                    out["client_id"] = payload["client_id"]
                await manager.broadcast(room, envelope("chat.message", out))
            elif type_ == "ping":
                await websocket.send_text(json.dumps(envelope("pong", payload, rid)))
            else:
                err = {"code": "UNKNOWN_TYPE", "message": type_, "retry_after": None}
                await websocket.send_text(json.dumps(envelope("error", err, rid)))
    except WebSocketDisconnect:
        pass
    finally:
        manager.disconnect(room, participant_id)


@app.websocket("/ws/streams/{stream_id}/")
async def stream_viewer(websocket: WebSocket, stream_id: str) -> None:
    """Camera viewer: stream.info, then every frame; subscribe and acks are ignored."""
    await websocket.accept()
    viewer_id = str(uuid.uuid4())
    frames[stream_id][viewer_id] = websocket
    info = {
        "stream_id": stream_id,
        "width": 640,
        "height": 480,
        "fps": 30,
        "kinds": ["raw"],
    }
    await websocket.send_text(json.dumps(envelope("stream.info", info)))
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        frames[stream_id].pop(viewer_id, None)


@app.websocket("/ws/streams/{stream_id}/publish/")
async def stream_publish(websocket: WebSocket, stream_id: str) -> None:
    """Camera ingest: a `frame` envelope then the JPEG, sent to each viewer in turn."""
    await websocket.accept()
    header: dict = {}
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                break
            if msg.get("text") is not None:
                header = json.loads(msg["text"]).get("payload", {})
                continue
            jpeg = msg.get("bytes") or b""
            for viewer_id, viewer in list(frames[stream_id].items()):
                try:
                    await viewer.send_text(json.dumps(envelope("frame", header)))
                    await viewer.send_bytes(jpeg)
                except Exception:
                    frames[stream_id].pop(viewer_id, None)
    except WebSocketDisconnect:
        pass
