"""The seed's messenger design: FastAPI, SQLite storage, one Redis channel per user.

Run: `redis-server --port 6390 &` then
`REDIS_URL=redis://127.0.0.1:6390/0 uvicorn bench.baselines.fastapi_messenger:app`.
As the seed describes it: a socket at `/api/v1/messenger/ws/{user_id}` (the user named
in the path, no token) registers in a manager of sockets per user, publishes
`online:status` on a user's first device and last one off, and subscribes its own
Redis Pub/Sub connection to `user:{user_id}`, relayed to the socket by a background
task; `conversation.subscribe` adds `conversation:{id}` (typing) to it. A send stores
the message (seq = the conversation's last + 1) and publishes the `message.new` frame
once on each member's `user:{id}` channel, so every device of every member gets it.
It speaks the project's envelope for what the bench uses (`system.connected`,
`conversation.subscribe` → `conversation.subscribed`, `message.send` → `message.new`,
`typing`, `ping` → `pong`); unknown types are only logged, as in the seed.
`POST /api/v1/messenger/conversations` {"kind", "title", "member_ids"} sets up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

log = logging.getLogger("bench.messenger")
DB_PATH = Path(
    os.environ.get(
        "BENCH_MESSENGER_DB",
        Path(tempfile.gettempdir()) / f"bench-messenger-{os.getpid()}.sqlite3",
    )
)
SCHEMA = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    last_seq INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE conversation_participants (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    user_id INTEGER NOT NULL, joined_at TEXT NOT NULL,
    PRIMARY KEY (conversation_id, user_id));
CREATE INDEX participants_by_user ON conversation_participants(user_id);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    seq INTEGER NOT NULL, sender_id INTEGER NOT NULL, content TEXT NOT NULL,
    client_id TEXT, created_at TEXT NOT NULL, UNIQUE (conversation_id, seq));
"""


def now_iso() -> str:
    """UTC timestamp with millisecond precision and a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(type_: str, payload: dict, request_id: str | None = None) -> str:
    """A server → client envelope, encoded."""
    msg = {"type": type_, "payload": payload, "timestamp": now_iso()}
    if request_id:
        msg["request_id"] = request_id
    return json.dumps(msg)


def error(code: str, message: str, request_id: str | None = None) -> str:
    """An `error` envelope, encoded."""
    body = {"code": code, "message": message, "retry_after": None}
    return envelope("error", body, request_id)


class Store:
    """The messenger's tables in SQLite, used from one thread (as Channels' database
    thread is): WAL and synchronous=NORMAL, like the project's SQLite settings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self.con: sqlite3.Connection | None = None

    async def run(self, fn, *args):
        """Run fn(connection, *args) on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, fn, self.con, *args
        )

    def open(self) -> None:
        """A fresh database file with the schema."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

        def _open(_):
            con = sqlite3.connect(self.path, check_same_thread=False)
            con.executescript(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + SCHEMA
            )
            return con

        self.con = self.pool.submit(_open, None).result()

    def close(self) -> None:
        """Close and delete the database."""
        if self.con is not None:
            self.pool.submit(self.con.close).result()
        self.pool.shutdown()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    @staticmethod
    def create(con, kind: str, title: str, member_ids: list[int]) -> str:
        """Insert a conversation and its participants; return its id."""
        cid, now = str(uuid.uuid4()), now_iso()
        with con:
            con.execute(
                "INSERT INTO conversations (id, kind, title, created_at) "
                "VALUES (?, ?, ?, ?)",
                (cid, kind, title, now),
            )
            con.executemany(
                "INSERT OR IGNORE INTO conversation_participants "
                "(conversation_id, user_id, joined_at) VALUES (?, ?, ?)",
                [(cid, uid, now) for uid in member_ids],
            )
        return cid

    @staticmethod
    def last_seq(con, cid: str, user_id: int) -> int | None:
        """The conversation's last seq if user_id is a participant, else None."""
        row = con.execute(
            "SELECT c.last_seq FROM conversations c JOIN conversation_participants p "
            "ON p.conversation_id = c.id WHERE c.id = ? AND p.user_id = ?",
            (cid, user_id),
        ).fetchone()
        return row[0] if row else None

    @staticmethod
    def send(con, cid: str, user_id: int, content: str, client_id: str | None):
        """Store a message; return (payload, member ids), or None if not a member."""
        with con:
            member = con.execute(
                "SELECT 1 FROM conversation_participants "
                "WHERE conversation_id = ? AND user_id = ?",
                (cid, user_id),
            ).fetchone()
            if not member:
                return None
            (seq,) = con.execute(
                "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? "
                "RETURNING last_seq",
                (cid,),
            ).fetchone()
            created = now_iso()
            cur = con.execute(
                "INSERT INTO messages (conversation_id, seq, sender_id, content, "
                "client_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (cid, seq, user_id, content, client_id, created),
            )
        members = [
            r[0]
            for r in con.execute(
                "SELECT user_id FROM conversation_participants "
                "WHERE conversation_id = ?",
                (cid,),
            )
        ]
        payload = {
            "conversation_id": cid,
            "seq": seq,
            "message_id": cur.lastrowid,
            "sender_id": user_id,
            "content": content,
            "created_at": created,
        }
        if client_id is not None:
            payload["client_id"] = client_id
        return payload, members


class ConnectionManager:
    """The seed's WebSocketConnectionManager: a list of sockets per user."""

    def __init__(self) -> None:
        self.active_connections: dict[int, list[WebSocket]] = {}

    def connect(self, user_id: int, websocket: WebSocket) -> bool:
        """Register; True on the user's first device."""
        sockets = self.active_connections.setdefault(user_id, [])
        sockets.append(websocket)
        return len(sockets) == 1

    def disconnect(self, user_id: int, websocket: WebSocket) -> bool:
        """Forget a socket; True when it was the user's last device."""
        sockets = self.active_connections.get(user_id, [])
        with suppress(ValueError):
            sockets.remove(websocket)
        if sockets:
            return False
        self.active_connections.pop(user_id, None)
        return True


store = Store(DB_PATH)
manager = ConnectionManager()
redis: aioredis.Redis | None = None


@asynccontextmanager
async def lifespan(_app: FastAPI):
    """Open the database and Redis (retried: redis-server may start alongside)."""
    global redis
    store.open()
    # One connection per socket's subscription, plus the publishers': far beyond
    # redis-py's default pool of 100.
    redis = aioredis.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        decode_responses=True,
        max_connections=20_000,
    )
    for _ in range(100):
        try:
            await redis.ping()
            break
        except OSError:
            await asyncio.sleep(0.1)
    else:
        raise RuntimeError("Redis did not answer within 10 s")
    yield
    await redis.aclose()
    store.close()


app = FastAPI(lifespan=lifespan)


class NewConversation(BaseModel):
    kind: str = "group"
    title: str = ""
    member_ids: list[int]


@app.post("/api/v1/messenger/conversations")
async def create_conversation(body: NewConversation) -> dict:
    """Create a conversation with these participants (set-up only, no auth)."""
    cid = await store.run(Store.create, body.kind, body.title, body.member_ids)
    return {"id": cid}


async def publish_status(user_id: int, status: str) -> None:
    """The seed's presence: a message on the `online:status` channel."""
    body = {"user_id": user_id, "status": status, "timestamp": now_iso()}
    await redis.publish("online:status", json.dumps(body))


async def relay(pubsub, websocket: WebSocket) -> None:
    """The socket's Redis listener: every published frame goes to the socket."""
    with suppress(Exception):
        async for msg in pubsub.listen():
            if msg["type"] == "message":
                await websocket.send_text(msg["data"])


def conversation_id(payload: dict) -> str | None:
    """The payload's conversation_id in canonical form, or None if not a UUID."""
    try:
        return str(uuid.UUID(str(payload.get("conversation_id"))))
    except ValueError:
        return None


async def handle(user_id: int, websocket: WebSocket, pubsub, msg: dict) -> None:
    """One client envelope."""
    type_, payload = msg.get("type"), msg.get("payload") or {}
    rid = msg.get("request_id")
    if type_ == "ping":
        await websocket.send_text(envelope("pong", payload, rid))
        return
    if type_ not in ("conversation.subscribe", "message.send", "typing"):
        log.info("unknown message type %r from user %s", type_, user_id)
        return
    cid = conversation_id(payload)
    if cid is None:
        await websocket.send_text(
            error("INVALID_MESSAGE", "Invalid conversation_id format", rid)
        )
        return
    if type_ == "conversation.subscribe":
        last = await store.run(Store.last_seq, cid, user_id)
        if last is None:
            await websocket.send_text(error("NOT_FOUND", "no such conversation", rid))
            return
        await pubsub.subscribe(f"conversation:{cid}")
        body = {"conversation_id": cid, "last_seq": last}
        await websocket.send_text(envelope("conversation.subscribed", body, rid))
    elif type_ == "message.send":
        content = str(payload.get("content") or "")
        client_id = payload.get("client_id")
        stored = await store.run(Store.send, cid, user_id, content, client_id)
        if stored is None:
            await websocket.send_text(error("NOT_FOUND", "no such conversation", rid))
            return
        out, members = stored
        frame = envelope("message.new", out)
        for member in members:
            await redis.publish(f"user:{member}", frame)
    else:
        body = {
            "conversation_id": cid,
            "user_id": user_id,
            "is_typing": bool(payload.get("is_typing", True)),
        }
        await redis.publish(f"conversation:{cid}", envelope("typing", body))


@app.websocket("/api/v1/messenger/ws/{user_id}")
async def messenger_socket(websocket: WebSocket, user_id: int) -> None:
    """Connect, listen to `user:{id}` on the socket's own Redis subscription, serve."""
    await websocket.accept()
    if manager.connect(user_id, websocket):
        await publish_status(user_id, "online")
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"user:{user_id}")
    listener = asyncio.create_task(relay(pubsub, websocket))
    await websocket.send_text(envelope("system.connected", {"user_id": user_id}))
    try:
        while True:
            data = await websocket.receive_text()
            try:
                msg = json.loads(data)
                if not isinstance(msg, dict):
                    raise ValueError
            except ValueError:
                await websocket.send_text(error("INVALID_JSON", "Invalid JSON format"))
                continue
            await handle(user_id, websocket, pubsub, msg)
    except WebSocketDisconnect:
        pass
    finally:
        listener.cancel()
        with suppress(asyncio.CancelledError):
            await listener
        with suppress(Exception):
            await pubsub.aclose()
        if manager.disconnect(user_id, websocket):
            with suppress(Exception):
                await publish_status(user_id, "offline")
