"""One running query: the task that drives the agent and the ``AgentIO`` it talks to.

A query is a task of its own, so several can be in flight on one socket and the
receive loop keeps serving while an agent waits for a callback. It is deliberately
*not* cancelled when its socket closes: it finishes detached (its callbacks fail at
once as ``CallbackTimeout``, its frames go only to the delta log), so that a client
reconnecting within ``COPILOT_RESUME_TTL`` can ``query.resume`` it. It is bounded all
the same: ``COPILOT_QUERY_TIMEOUT`` seconds at most.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from realtime.callbacks import CallbackTimeout
from realtime.copilot.agents import Agent, ApiResult, Query
from realtime.copilot.owner import Owner
from realtime.copilot.resume import FLUSH_DELAY, DeltaLog, query_timeout
from realtime.errors import DomainError, realtime_error
from realtime.protocol import InternalError, RealtimeError

logger = logging.getLogger("realtime.copilot")

# Every query running in this process, attached or detached, by query id: keeps a
# reference to detached tasks and lets a resumed connection cancel them.
RUNNING: dict[str, QueryRun] = {}


def new_query_id() -> str:
    """96 random bits: unguessable, so another user cannot name (resume) a query."""
    return "q-" + secrets.token_urlsafe(12)


class ClientGone(CallbackTimeout):
    """The socket a callback would go to is closed: nobody can answer it."""

    def __init__(self, type_: str) -> None:
        Exception.__init__(self, f"{type_}: the client is gone")
        self.request_id = None
        self.timeout = 0.0


class QueryRun:
    """Runs ``agent.run(query, self)``; ``self`` is the agent's ``AgentIO``.

    ``on_end`` is called with the run once it is over (answered, failed, cancelled or
    shut down), as the task's last step: the owner forgets the run there.
    """

    def __init__(
        self,
        *,
        owner: Owner,
        agent: Agent,
        query: Query,
        request_id: str | None,
        on_end: Callable[[QueryRun], None] | None = None,
    ) -> None:
        self.owner = owner
        self.on_end = on_end
        self.agent = agent
        self.query = query
        self.query_id = query.query_id
        self.request_id = request_id  # of the ``query`` frame, for error replies
        self.log = DeltaLog(
            query_id=query.query_id, user_id=query.user_id, delay=FLUSH_DELAY
        )
        self.parts: list[str] = []
        self.sent = 0  # index of the last delta handed to the owner's socket
        self.responded = False
        self.started = False
        self.cancel_requested = False
        self.task: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.log.open()
        RUNNING[self.query_id] = self
        self.task = asyncio.ensure_future(self._main())

    def cancel(self) -> None:
        """``query.cancel``: stop the agent; the query ends with ``cancelled``."""
        self.cancel_requested = True
        if self.started and self.task is not None and not self.task.done():
            self.task.cancel()

    @property
    def attached(self) -> bool:
        return not self.owner.closing

    async def _main(self) -> None:
        self.started = True
        try:
            await self._run_agent()
        except asyncio.CancelledError:
            if not self.cancel_requested:
                raise  # the server is shutting down
            await self._finish(cancelled=True)
        except CallbackTimeout:
            await self._finish(error="TIMEOUT")
        except (RealtimeError, DomainError) as exc:
            # An agent's refusal, wire or domain: translated here, the run's edge.
            error = exc if isinstance(exc, RealtimeError) else realtime_error(exc)
            await self.owner.send_error(error, request_id=self.request_id)
            await self._finish(error=str(error.code))
        except Exception:
            trace = secrets.token_hex(6)
            logger.exception("agent failed trace=%s query=%s", trace, self.query_id)
            await self.owner.send_error(
                InternalError(f"internal error (trace {trace})"),
                request_id=self.request_id,
            )
            await self._finish(error="INTERNAL")
        finally:
            RUNNING.pop(self.query_id, None)
            if self.on_end is not None:
                self.on_end(self)

    async def _run_agent(self) -> None:
        if self.cancel_requested:  # cancelled before the task first ran
            raise asyncio.CancelledError
        deadline = asyncio.timeout(query_timeout())
        try:
            async with deadline:
                await self.agent.run(self.query, self)
        except TimeoutError:
            if not deadline.expired():
                raise  # the agent's own TimeoutError: a bug, reported as INTERNAL
            logger.warning("query=%s stopped after its time limit", self.query_id)
            await self._finish(error="TIMEOUT")
            return
        await self._finish()

    async def _finish(self, **flags: Any) -> None:
        """The final ``response`` when the agent did not give one (once)."""
        if not self.responded:
            await self._respond({"text": "".join(self.parts), **flags})

    async def _respond(self, fields: dict[str, Any]) -> None:
        self.responded = True
        payload = {"query_id": self.query_id, **fields}
        self.log.close(payload)
        await self.log.drained()  # the log is complete before the client hears so
        if self.attached:
            await self.owner.send_frame("response", payload)

    # ------------------------------------------------------------------ AgentIO
    async def _ask(self, type_: str, payload: dict[str, Any], reply: str) -> Any:
        if not self.attached:
            raise ClientGone(type_)
        try:
            return await self.owner.request_client(
                type_, {"query_id": self.query_id, **payload}, expects={reply}
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # The socket closed while we waited: its pending requests were cancelled.
            raise ClientGone(type_) from None

    async def request_available_data(self) -> list[dict[str, Any]]:
        reply = await self._ask("request_available_data", {}, "available_data")
        return list(reply.items)

    async def request_api(
        self, method: str, path: str, params: dict[str, Any] | None = None
    ) -> ApiResult:
        reply = await self._ask(
            "request_api",
            {"method": method, "path": path, "params": params or {}},
            "api_result",
        )
        return ApiResult(status=reply.status, body=reply.body)

    async def clarify(self, question: str, options: list[str] | None = None) -> str:
        payload: dict[str, Any] = {"question": question}
        if options is not None:
            payload["options"] = list(options)
        reply = await self._ask("clarification_request", payload, "human_response")
        return reply.answer

    async def delta(self, text: str) -> None:
        if self.responded:
            raise RuntimeError("delta() after respond()")
        if not text:
            return
        index = self.log.append(text)  # logged (within FLUSH_DELAY) even if unsent
        self.parts.append(text)
        if self.attached:
            self.sent = index
            await self.owner.send_frame(
                "response.delta",
                {"query_id": self.query_id, "delta": text, "index": index},
            )

    async def respond(
        self, text: str, sources: list[dict[str, Any]] | None = None
    ) -> None:
        if self.responded:
            raise RuntimeError("respond() called twice")
        fields: dict[str, Any] = {"text": text}
        if sources:
            fields["sources"] = sources
        await self._respond(fields)
