"""An agent for any OpenAI-compatible chat-completions endpoint, streamed.

``COPILOT_AGENT=realtime.copilot.llm.ChatCompletionsAgent`` with ``COPILOT_LLM_URL``
(the endpoint, or a base URL such as ``http://127.0.0.1:8080/v1``),
``COPILOT_LLM_MODEL`` and ``COPILOT_LLM_API_KEY``. It asks the client which data it
holds, names it to the model, and streams the model's tokens (server-sent events:
``data: {...choices[0].delta.content...}`` lines ending with ``data: [DONE]``) as
``response.delta``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from django.core.exceptions import ImproperlyConfigured

from realtime.callbacks import CallbackTimeout
from realtime.copilot.agents import Agent, AgentIO, Query, item_name
from realtime.copilot.conf import copilot_settings

logger = logging.getLogger("realtime.copilot")

MAX_ANSWER_CHARS = 100_000  # a runaway model cannot grow server memory without bound
SYSTEM_PROMPT = (
    "You are the copilot of a web application. Answer the user's question briefly "
    "and plainly."
)


def completions_url(url: str) -> str:
    """The chat-completions endpoint for a full endpoint URL or a base URL."""
    url = url.strip()
    if url.rstrip("/").endswith("/chat/completions"):
        return url
    return url.rstrip("/") + "/chat/completions"


def build_messages(
    query: Query, items: list[dict[str, Any]] | None
) -> list[dict[str, str]]:
    """The chat messages for one query: instructions, what the client holds, the ask."""
    system = SYSTEM_PROMPT
    if items:
        listed = []
        for item in items:
            path = item.get("path")
            name = item_name(item) or "?"
            listed.append(f"{name} ({path})" if isinstance(path, str) else name)
        system += " The user's client holds these data sets: " + ", ".join(listed) + "."
    if query.context:
        system += " Context from the client: " + json.dumps(query.context)[:4000]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": query.text},
    ]


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined by newlines)."""
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # comments (":"), event:, id:, retry: carry nothing we need
    if data:
        yield "\n".join(data)


def delta_content(data: str) -> str | None:
    """``choices[0].delta.content`` of one streamed chunk, if any."""
    try:
        chunk = json.loads(data)
        content = chunk["choices"][0]["delta"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else None


class ChatCompletionsAgent(Agent):
    use_available_data = True  # ask the client what it holds, and tell the model

    def __init__(self) -> None:
        url = copilot_settings.COPILOT_LLM_URL
        if not url:
            raise ImproperlyConfigured(
                "COPILOT_LLM_URL must name an OpenAI-compatible endpoint for "
                "realtime.copilot.llm.ChatCompletionsAgent"
            )
        self.url = completions_url(url)
        self.model = copilot_settings.COPILOT_LLM_MODEL
        self.api_key = copilot_settings.COPILOT_LLM_API_KEY
        self.timeout = copilot_settings.COPILOT_LLM_TIMEOUT

    def request_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages, "stream": True}
        if self.model:
            body["model"] = self.model
        return body

    async def run(self, query: Query, io: AgentIO) -> None:
        items = None
        if self.use_available_data:
            try:
                items = await io.request_available_data()
            except CallbackTimeout:
                items = None  # answer without them
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = self.request_body(build_messages(query, items))
        parts: list[str] = []
        try:
            await self._stream(body, headers, parts, io)
        except httpx.HTTPError as exc:
            logger.warning("LLM request failed: %s: %s", type(exc).__name__, exc)
            reason = (
                "it did not answer in time"
                if isinstance(exc, httpx.TimeoutException)
                else "it could not be reached"
            )
            note = f"The language model is unavailable: {reason}."
            await io.respond("".join(parts) + ("\n\n" if parts else "") + note)
            return
        except _UpstreamStatus as exc:
            logger.warning("LLM endpoint answered HTTP %s", exc.status)
            await io.respond(
                f"The language model is unavailable: it answered HTTP {exc.status}."
            )
            return
        await io.respond("".join(parts))

    async def _stream(
        self,
        body: dict[str, Any],
        headers: dict[str, str],
        parts: list[str],
        io: AgentIO,
    ) -> None:
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0))
        size = 0
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("POST", self.url, json=body, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise _UpstreamStatus(response.status_code)
            async for data in sse_data(response.aiter_lines()):
                if data.strip() == "[DONE]":
                    return
                content = delta_content(data)
                if not content:
                    continue
                content = content[: MAX_ANSWER_CHARS - size]
                size += len(content)
                parts.append(content)
                await io.delta(content)
                if size >= MAX_ANSWER_CHARS:
                    return


class _UpstreamStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
