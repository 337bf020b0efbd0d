"""A test-only endpoint that exercises the parts of the toolkit echo does not."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from channels.routing import URLRouter
from django.urls import path
from pydantic import Field

from realtime.auth import RealtimeAuthMiddleware
from realtime.broadcast import broadcast, close_group
from realtime.consumers import CloseConnection, EnvelopeConsumer
from realtime.groups import session_group
from realtime.origin import RealtimeOriginValidator
from realtime.protocol import StrictModel, encode_frame


class Say(StrictModel):
    text: str = Field(max_length=100)
    others_only: bool = False


class Code(StrictModel):
    code: int


class ToolkitConsumer(EnvelopeConsumer):
    endpoint = "toolkit"
    accepts_binary = True
    messages = {
        "room.say": Say,
        "room.leave": None,
        "room.kick": Code,
        "close.me": Code,
        "ask.unhandled": None,
        "boom.disconnect": None,
    }
    task_messages = frozenset({"ask.unhandled"})
    replies = {"answer": None}
    events = frozenset({"toolkit.poke"})
    disconnects: list[int | None] = []

    async def on_connect(self):
        query = parse_qs(self.scope["query_string"].decode())
        if "reject" in query:
            raise CloseConnection(int(query["reject"][0]))
        if "crash" in query:
            raise RuntimeError("connect bug")
        if "selfclose" in query:
            await self.close_with(4010)
            return
        self.room = session_group("toolkit")
        await self.join_group(self.room)
        await self.enter_room(self.room, {"nickname": query.get("nick", ["anon"])[0]})
        await self.enter_room(self.room)  # idempotent
        if "slow" in query:  # a greeting that takes a while (a replay, say)
            await asyncio.sleep(float(query["slow"][0]))
        await self.send_frame("hello", {"conn": self.conn_id})

    async def on_room_say(self, payload: Say, envelope):
        text = encode_frame("room.said", {"text": payload.text})
        exclude = self.channel_name if payload.others_only else None
        await broadcast(self.room, text, exclude=exclude)

    async def on_room_leave(self, payload, envelope):
        await self.leave_group(self.room)
        await self.leave_group(self.room)  # twice is harmless
        await self.reply(envelope, "room.left", {})

    async def on_room_kick(self, payload: Code, envelope):
        await close_group(self.room, payload.code, exclude=self.channel_name)

    async def on_close_me(self, payload: Code, envelope):
        raise CloseConnection(payload.code)

    async def on_ask_unhandled(self, payload, envelope):
        # CallbackTimeout escapes the handler: the toolkit already told the client.
        await self.request_client("question", {}, expects={"answer"}, timeout=0.1)

    async def on_boom_disconnect(self, payload, envelope):
        self.explode_on_disconnect = True
        await self.reply(envelope, "armed", {})

    async def event_toolkit_poke(self, event: dict):  # a typed group event
        await self.send_frame("poked", {"n": event["n"]})

    async def on_binary(self, data: bytes):
        await self.send_bytes(data[::-1])

    async def on_disconnect(self, code):
        type(self).disconnects.append(code)
        if getattr(self, "explode_on_disconnect", False):
            raise RuntimeError("disconnect bug")


application = RealtimeOriginValidator(
    RealtimeAuthMiddleware(URLRouter([path("ws/toolkit/", ToolkitConsumer.as_asgi())]))
)
