"""``/ws/copilot/``: the assistant socket (docs/protocol.md §7, docs/copilot.md).

Thin on purpose: validation is the toolkit's, answering is the agent's
(``realtime.copilot.agents``), a query's life is ``runs.QueryRun``, voice is
``audio.AudioSession`` and resumable answers are ``resume``. This class wires them
to the wire types, the rate limit and the single-session policy.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from realtime.broadcast import close_group
from realtime.consumers import CloseConnection, EnvelopeConsumer
from realtime.copilot import limits
from realtime.copilot.agents import Agent, Query, load_agent
from realtime.copilot.audio import AudioSession
from realtime.copilot.conf import copilot_settings
from realtime.copilot.groups import copilot_group
from realtime.copilot.resume import LogView, delta_log_read, query_timeout, resume_ttl
from realtime.copilot.runs import RUNNING, QueryRun, new_query_id
from realtime.copilot.schemas import (
    ApiResultPayload,
    AudioProgress,
    AudioStarted,
    AudioStartPayload,
    AudioVad,
    AvailableDataPayload,
    ClarificationRequest,
    Connected,
    HumanResponsePayload,
    QueryAccepted,
    QueryCancelPayload,
    QueryPayload,
    QueryRef,
    QueryResumed,
    QueryResumePayload,
    RequestApi,
    Response,
    ResponseDelta,
)
from realtime.heartbeat import heartbeat_settings
from realtime.protocol import (
    ClientEnvelope,
    CloseCode,
    InvalidMessage,
    NotFound,
    RateLimited,
    RealtimeError,
)

RESUME_POLL = 0.1  # seconds between reads of a resumed query's log (docs/copilot.md)


class CopilotConsumer(EnvelopeConsumer):
    endpoint = "copilot"
    auth_required = True
    accepts_binary = True
    messages = {
        "query": QueryPayload,
        "query.cancel": QueryCancelPayload,
        "query.resume": QueryResumePayload,
        "audio.start": AudioStartPayload,
        "audio.stop": None,
    }
    replies = {
        "available_data": AvailableDataPayload,
        "api_result": ApiResultPayload,
        "human_response": HumanResponsePayload,
    }
    sends = {
        "connected": Connected,
        "query.accepted": QueryAccepted,
        "query.resumed": QueryResumed,
        "response.delta": ResponseDelta,
        "response": Response,
        "request_available_data": QueryRef,
        "request_api": RequestApi,
        "clarification_request": ClarificationRequest,
        "audio.started": AudioStarted,
        "audio.progress": AudioProgress,
        "audio.stopped": AudioProgress,
        "audio.vad": AudioVad,
    }

    # ------------------------------------------------------------------ lifecycle
    async def on_connect(self) -> None:
        if getattr(self.user, "pk", None) is None:
            raise CloseConnection(CloseCode.FORBIDDEN)  # a guest token: users only
        self.agent: Agent = load_agent()
        self.runs: dict[str, QueryRun] = {}
        self.tails: dict[str, asyncio.Task] = {}
        self.audio: AudioSession | None = None
        group = copilot_group(self.user.pk)
        await self.join_group(group)
        if copilot_settings.SINGLE_SESSION_PER_USER:
            await close_group(group, CloseCode.REPLACED, exclude=self.channel_name)
        limiter = limits.query_limiter()
        budget = await limiter.apeek(self._rate_key())
        await self.send_frame(
            "connected",
            {
                "user_id": self.user.pk,
                "connection_id": self.conn_id,
                "heartbeat": heartbeat_settings(),
                "rate_limit": {
                    "limit": limiter.limit,
                    "window": limiter.window,
                    "remaining": budget.remaining,
                },
                "resume_ttl": resume_ttl(),
            },
        )

    def _rate_key(self) -> str:
        return limits.rate_key(user_id=self.user.pk, conn_id=self.conn_id)

    # ------------------------------------------------------------------ queries
    async def on_query(self, payload: QueryPayload, envelope: ClientEnvelope) -> None:
        # Inline, not a task: a burst of queries is refused without creating any.
        if len(self.runs) >= limits.max_in_flight():
            raise RateLimited(
                f"{len(self.runs)} queries are already running on this connection",
                retry_after=1.0,
            )
        limiter, key = limits.query_limiter(), self._rate_key()
        budget = await limiter.ahit(key)
        if not budget.allowed:
            raise RateLimited(
                f"over {limiter.limit} queries per {limiter.window:g} s",
                retry_after=budget.retry_after,
            )
        query = Query(
            query_id=new_query_id(),
            text=payload.text,
            user_id=self.user.pk,
            context=dict(payload.context or {}),
        )
        run = QueryRun(
            owner=self,
            agent=self.agent,
            query=query,
            request_id=envelope.request_id,
            on_end=self._run_ended,
        )
        self.runs[query.query_id] = run
        await self.reply(
            envelope,
            "query.accepted",
            {"query_id": query.query_id, "remaining": budget.remaining},
        )
        run.start()

    def _run_ended(self, run: QueryRun) -> None:
        self.runs.pop(run.query_id, None)

    async def on_query_cancel(
        self, payload: QueryCancelPayload, envelope: ClientEnvelope
    ) -> None:
        run = RUNNING.get(payload.query_id)
        if run is None or run.query.user_id != self.user.pk:
            raise NotFound(f"no running query {payload.query_id}")
        run.cancel()

    async def on_query_resume(
        self, payload: QueryResumePayload, envelope: ClientEnvelope
    ) -> None:
        query_id, after = payload.query_id, payload.after
        own = self.runs.get(query_id)
        if own is not None:
            own.log.flush()  # everything it sent so far must be readable
            await own.log.drained()
        view = await asyncio.to_thread(  # the cache's round trips, off the loop
            delta_log_read,
            query_id=query_id,
            user_id=self.user.pk,
            after=after,
            upto=None if own is None else own.sent,
        )
        if view is None:
            raise NotFound(f"no resumable query {query_id} (unknown or expired)")
        await self.reply(
            envelope,
            "query.resumed",
            {
                "query_id": query_id,
                "after": after,
                "count": view.count,
                "done": view.final is not None,
            },
        )
        previous = self.tails.pop(query_id, None)
        if previous is not None:
            previous.cancel()
        if own is not None:
            # Still streaming on this very socket: replay what was already sent
            # after ``after``; the run itself sends everything newer.
            await self._send_deltas(query_id, after, view.deltas)
            return
        self.tails[query_id] = self.spawn(
            self._tail(query_id, after, view), envelope.request_id
        )

    async def _send_deltas(self, query_id: str, after: int, deltas: list[str]) -> int:
        for index, delta in enumerate(deltas, start=after + 1):
            await self.send_frame(
                "response.delta", {"query_id": query_id, "delta": delta, "index": index}
            )
        return after + len(deltas)

    async def _tail(self, query_id: str, last: int, view: LogView) -> None:
        """Replay a resumed query's log, then follow it until its ``response``.

        The query may be running detached in any server process, so the log (in the
        shared cache) is the one place to follow it: read every ``RESUME_POLL`` s.
        """
        deadline = time.monotonic() + query_timeout() + resume_ttl()
        try:
            while True:
                last = await self._send_deltas(query_id, last, view.deltas)
                if view.final is not None:
                    await self.send_frame("response", view.final)
                    return
                if time.monotonic() > deadline:
                    raise NotFound(f"query {query_id} stopped without an answer")
                await asyncio.sleep(RESUME_POLL)
                found = delta_log_read(
                    query_id=query_id, user_id=self.user.pk, after=last
                )
                if found is None:
                    raise NotFound(f"query {query_id} expired while resuming")
                view = found
        finally:
            if self.tails.get(query_id) is asyncio.current_task():
                del self.tails[query_id]

    # ------------------------------------------------------------------ voice
    async def on_audio_start(
        self, payload: AudioStartPayload, envelope: ClientEnvelope
    ) -> None:
        if self.audio is not None:
            raise InvalidMessage("audio already started: send audio.stop first")
        self.audio = AudioSession(
            owner=self, agent=self.agent, sample_rate=payload.sample_rate
        )
        self.audio.start()
        await self.reply(
            envelope,
            "audio.started",
            {
                "format": payload.format,
                "sample_rate": payload.sample_rate,
                "channels": payload.channels,
                "max_frame_bytes": self.audio.max_frame_bytes,
            },
        )

    async def on_audio_stop(self, payload: Any, envelope: ClientEnvelope) -> None:
        if self.audio is None:
            raise InvalidMessage("no audio stream to stop: send audio.start first")
        session, self.audio = self.audio, None
        session.intake.close()  # frames from now on are outside a stream
        self.spawn(session.stop(envelope.request_id), envelope.request_id)

    async def on_binary(self, data: bytes) -> None:
        if self.audio is None:
            await self.reject(
                InvalidMessage("binary frame outside audio.start … audio.stop")
            )
            return
        try:
            self.audio.receive(data)
        except RealtimeError as exc:
            await self.reject(exc)  # counted as a violation only when malformed
