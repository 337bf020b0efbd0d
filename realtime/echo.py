"""``/ws/echo/``: a diagnostic endpoint that exercises the toolkit end to end.

Signed-in users only. ``echo`` sends the payload back; ``echo.ask`` makes the server
ask the client a question (a server → client request answered by ``echo.answer``) and
report the answer or the timeout; ``echo.broadcast`` sends the payload to every echo
socket of the same user, on every server process. Useful to check a client library, or
a multi-process deployment, against the server.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from realtime.broadcast import broadcast
from realtime.callbacks import CallbackTimeout
from realtime.consumers import EnvelopeConsumer
from realtime.groups import user_group
from realtime.protocol import ClientEnvelope, OpenModel, StrictModel, encode_frame


class AskPayload(StrictModel):
    question: str = Field(min_length=1, max_length=500)
    timeout: float | None = Field(default=None, gt=0, le=60)


class AnswerPayload(StrictModel):
    answer: str = Field(max_length=500)


# ------------------------------------------------------------------ server → client
class EchoReady(StrictModel):
    """``echo.ready``: the greeting."""

    user_id: int
    connection_id: str


class EchoQuestion(StrictModel):
    """``echo.question``: a server → client request, answered by ``echo.answer``."""

    question: str


class EchoAnswered(StrictModel):
    """``echo.answered``: the client's answer, ``null`` after a timeout."""

    answer: str | None


class EchoBroadcasted(StrictModel):
    """``echo.broadcasted``: an ``echo.broadcast`` payload, from every echo socket
    of the same user."""

    from_: str = Field(alias="from")
    payload: dict[str, Any]


class EchoConsumer(EnvelopeConsumer):
    endpoint = "echo"
    users_only = True
    throttle_setting = "ECHO_THROTTLES"  # realtime.conf: echo.ask, echo.broadcast
    messages = {"echo": OpenModel, "echo.ask": AskPayload, "echo.broadcast": OpenModel}
    task_messages = frozenset({"echo.ask"})
    replies = {"echo.answer": AnswerPayload}
    sends = {
        "echo.ready": EchoReady,
        "echo": OpenModel,
        "echo.question": EchoQuestion,
        "echo.answered": EchoAnswered,
        "echo.broadcasted": EchoBroadcasted,
    }

    async def on_connect(self) -> None:
        await self.join_group(user_group(self.user.pk))
        await self.send_frame(
            "echo.ready", {"user_id": self.user.pk, "connection_id": self.conn_id}
        )

    async def on_echo(self, payload: Any, envelope: ClientEnvelope) -> None:
        await self.reply(envelope, "echo", envelope.payload)

    async def on_echo_broadcast(self, payload: Any, envelope: ClientEnvelope) -> None:
        frame = encode_frame(
            "echo.broadcasted", {"from": self.conn_id, "payload": envelope.payload}
        )
        await broadcast(user_group(self.user.pk), frame)

    async def on_echo_ask(self, payload: AskPayload, envelope: ClientEnvelope) -> None:
        try:
            answer = await self.request_client(
                "echo.question",
                {"question": payload.question},
                expects={"echo.answer"},
                timeout=payload.timeout,
            )
        except CallbackTimeout:
            await self.reply(envelope, "echo.answered", {"answer": None})
            return
        await self.reply(envelope, "echo.answered", {"answer": answer.answer})
