"""The agent interface and the built-in reference agent (docs/protocol.md §7).

An agent answers one ``Query`` through an ``AgentIO``: it may ask the client for data
(``request_available_data``, ``request_api``, ``clarify``), streams text with
``delta`` and ends with ``respond``. Its optional speech hook ``on_audio`` reads the
audio a client streams with ``audio.start`` and reports through a ``SpeechIO``.
``COPILOT_AGENT`` names the class; one instance serves one connection.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from realtime.callbacks import CallbackTimeout
from realtime.copilot.conf import copilot_settings
from realtime.copilot.voice import EnergyVAD


@dataclass(frozen=True)
class Query:
    query_id: str
    text: str
    user_id: Any
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiResult:
    status: int
    body: Any


class AgentIO(Protocol):
    """What an agent may do while answering; every request may raise
    ``CallbackTimeout`` (not answered in time, or the client went away)."""

    async def request_available_data(self) -> list[dict[str, Any]]: ...

    async def request_api(
        self, method: str, path: str, params: dict[str, Any] | None = None
    ) -> ApiResult: ...

    async def clarify(self, question: str, options: list[str] | None = None) -> str: ...

    async def delta(self, text: str) -> None: ...

    async def respond(
        self, text: str, sources: list[dict[str, Any]] | None = None
    ) -> None: ...


class AudioStream(Protocol):
    """The audio of one ``audio.start`` … ``audio.stop``: an async iterator of PCM
    chunks (bytes) that ends at ``audio.stop``."""

    format: str
    sample_rate: int
    channels: int

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class SpeechIO(Protocol):
    async def emit(self, type: str, payload: dict[str, Any]) -> None:
        """Send an ``audio.*`` event to the client."""


class Agent:
    """Base class. Subclasses implement ``run``; ``on_audio`` drains by default."""

    async def run(self, query: Query, io: AgentIO) -> None:
        raise NotImplementedError

    async def on_audio(self, audio: AudioStream, io: SpeechIO) -> None:
        async for _chunk in audio:
            pass


def load_agent(path: str | None = None) -> Agent:
    """A new instance of the agent class ``COPILOT_AGENT`` names."""
    path = path or copilot_settings.COPILOT_AGENT
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"COPILOT_AGENT={path!r} cannot be imported: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise ImproperlyConfigured(f"COPILOT_AGENT={path!r} is not an Agent subclass")
    return cls()


# --------------------------------------------------------------------------- helpers
_WORD_RE = re.compile(r"\S+\s*")


def words(text: str) -> list[str]:
    """``text`` cut into word-sized deltas that join back to ``text``."""
    leading = len(text) - len(text.lstrip())
    chunks = _WORD_RE.findall(text)
    if leading and chunks:
        chunks[0] = text[:leading] + chunks[0]
    return chunks or ([text] if text else [])


def item_name(item: dict[str, Any]) -> str | None:
    name = item.get("name")
    return name if isinstance(name, str) and name.strip() else None


def named_items(text: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items whose name appears in ``text`` (case-insensitive)."""
    lowered = text.lower()
    return [item for item in items if item_name(item).lower() in lowered]


def match_answer(answer: str, items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The item a clarification answer picks: its exact name, else the one named in
    the answer."""
    cleaned = answer.strip().lower()
    for item in items:
        if item_name(item).lower() == cleaned:
            return item
    named = named_items(answer, items)
    return named[0] if len(named) == 1 else None


def _records(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("records", "items", "data", "results"):
            if isinstance(body.get(key), list):
                return body[key]
    return None


def describe_body(body: Any) -> str:
    """One sentence on what an API body holds: record count and fields."""
    records = _records(body)
    if records is not None:
        fields: dict[str, None] = {}
        for record in records:
            if isinstance(record, dict):
                fields.update(dict.fromkeys(record))
        noun = "record" if len(records) == 1 else "records"
        text = f"{len(records)} {noun}"
        if fields:
            text += " with fields " + ", ".join(fields)
        return text
    if isinstance(body, dict):
        return (
            ("an object with fields " + ", ".join(body)) if body else "an empty object"
        )
    if body is None:
        return "no body"
    return f"the value {body!r}"


# --------------------------------------------------------------------------- reference
class ReferenceAgent(Agent):
    """Deterministic, model-free, and exercises every callback (§7):

    1. asks ``request_available_data``;
    2. no items: answers that no data is available;
    3. the query names one item: ``request_api`` GET on its path, answers from it;
    4. it names none (or several) and there are several candidates:
       ``clarification_request`` with their names, continues with the answer;
    5. a callback that times out ends the query explaining what was missing.

    Speech hook: energy VAD on the PCM, ``audio.vad {"speaking", "at_ms"}`` events.
    """

    async def run(self, query: Query, io: AgentIO) -> None:
        try:
            raw_items = await io.request_available_data()
        except CallbackTimeout:
            await self._say(
                io,
                "I could not answer: the list of available data was not received "
                "in time.",
            )
            return
        items = [item for item in raw_items if item_name(item)]
        if not items:
            await self._say(
                io,
                "No data is available on this client, so I cannot answer from local "
                "data.",
            )
            return
        # The items the query names, else all of them; ask only if that is several.
        pool = named_items(query.text, items) or items
        chosen = pool[0] if len(pool) == 1 else await self._clarify(io, pool)
        if chosen is not None:
            await self._use(io, chosen)

    async def _clarify(
        self, io: AgentIO, pool: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        names = [item_name(item) for item in pool]
        listed = ", ".join(names)
        try:
            answer = await io.clarify("Which data should I use?", names)
        except CallbackTimeout:
            await self._say(
                io,
                f"I could not answer: the choice between {listed} was not made "
                "in time.",
            )
            return None
        chosen = match_answer(answer, pool)
        if chosen is None:
            await self._say(
                io, f"I could not match {answer.strip()!r} to any of {listed}."
            )
        return chosen

    async def _use(self, io: AgentIO, item: dict[str, Any]) -> None:
        name = item_name(item)
        path = item.get("path")
        if not isinstance(path, str) or not path:
            await self._say(io, f"{name} has no path I could query.", [{"name": name}])
            return
        source = {"name": name, "path": path}
        try:
            result = await io.request_api("GET", path, {})
        except CallbackTimeout:
            await self._say(
                io,
                f"I could not answer: the result of GET {path} for "
                f"{name} was not received in time.",
                [source],
            )
            return
        if 200 <= result.status < 300:
            text = f"{name} ({path}) holds {describe_body(result.body)}."
        else:
            text = f"The local API answered {result.status} for GET {path} ({name})."
        await self._say(io, text, [source])

    async def _say(
        self, io: AgentIO, text: str, sources: list[dict[str, Any]] | None = None
    ) -> None:
        for chunk in words(text):
            await io.delta(chunk)
        await io.respond(text, sources)

    async def on_audio(self, audio: AudioStream, io: SpeechIO) -> None:
        vad = EnergyVAD(audio.sample_rate)
        async for chunk in audio:
            for event in vad.feed(chunk):
                await io.emit(
                    "audio.vad", {"speaking": event.speaking, "at_ms": event.at_ms}
                )
        for event in vad.flush():
            await io.emit(
                "audio.vad", {"speaking": event.speaking, "at_ms": event.at_ms}
            )
