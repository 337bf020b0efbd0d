"""The naive consumer: a group per session, group_send, one json.dumps per member."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer

SEQ: dict[str, int] = defaultdict(int)  # in-memory per-session counter (single process)


def now_iso() -> str:
    """UTC timestamp with millisecond precision and a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(type_: str, payload: dict, request_id: str | None = None) -> str:
    """Encode a server → client envelope."""
    msg = {"type": type_, "payload": payload, "timestamp": now_iso()}
    if request_id:
        msg["request_id"] = request_id
    return json.dumps(msg)


class SessionConsumer(AsyncWebsocketConsumer):
    """/ws/sessions/<code>/: welcome; chat.send → group_send chat.message; ping."""

    async def connect(self) -> None:
        """Join the session's group and greet."""
        self.code = self.scope["url_route"]["kwargs"]["code"]
        self.group = f"session.{self.code}"
        qs = parse_qs(self.scope.get("query_string", b"").decode())
        self.participant_id = qs.get("participant_id", [str(uuid.uuid4())])[0]
        self.nickname = qs.get("nickname", [self.participant_id[:8]])[0]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        you = {
            "participant_id": self.participant_id,
            "nickname": self.nickname,
            "role": "guest",
        }
        session = {"code": self.code, "title": self.code, "status": "open"}
        welcome = {"session": session, "you": you, "last_seq": SEQ[self.code]}
        await self.send(text_data=envelope("session.welcome", welcome))

    async def disconnect(self, code: int) -> None:
        """Leave the group."""
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        """Dispatch the client's type explicitly (never through Channels' dispatch)."""
        try:
            msg = json.loads(text_data or "")
            type_, payload = msg["type"], msg.get("payload") or {}
        except (ValueError, KeyError, TypeError):
            err = {
                "code": "INVALID_JSON",
                "message": "not a JSON envelope",
                "retry_after": None,
            }
            await self.send(text_data=envelope("error", err))
            return
        rid = msg.get("request_id")
        if type_ == "chat.send":
            SEQ[self.code] += 1
            out = {
                "seq": SEQ[self.code],
                "message_id": str(uuid.uuid4()),
                "participant_id": self.participant_id,
                "nickname": self.nickname,
                "content": str(payload.get("content", "")),
                "created_at": now_iso(),
            }
            if payload.get("client_id"):
                out["client_id"] = payload["client_id"]
            await self.channel_layer.group_send(
                self.group, {"type": "chat.message", "payload": out}
            )
        elif type_ == "ping":
            await self.send(text_data=envelope("pong", payload, rid))
        else:
            err = {"code": "UNKNOWN_TYPE", "message": type_, "retry_after": None}
            await self.send(text_data=envelope("error", err, rid))

    async def chat_message(self, event: dict) -> None:
        """Group event → one text frame to this socket."""
        await self.send(text_data=envelope("chat.message", event["payload"]))
