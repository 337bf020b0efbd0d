"""Agents for tests, plugged in with ``settings.COPILOT_AGENT``."""

from __future__ import annotations

import asyncio

from realtime.copilot.agents import Agent, ReferenceAgent
from realtime.errors import PermissionDenied
from realtime.protocol import Forbidden

LONG_ANSWER = [f"word{i} " for i in range(60)]


class SlowAgent(ReferenceAgent):
    """Streams ``LONG_ANSWER`` a word every ``delay`` s; VAD from the reference."""

    delay = 0.05

    async def run(self, query, io):
        for word in LONG_ANSWER:
            await io.delta(word)
            await asyncio.sleep(self.delay)
        await io.respond("".join(LONG_ANSWER), [{"name": "slow"}])


class SilentAgent(Agent):
    """Streams two deltas and never calls respond()."""

    async def run(self, query, io):
        await io.delta("half ")
        await io.delta("answer")


class SleepyAgent(Agent):
    async def run(self, query, io):
        await io.delta("thinking ")
        await asyncio.sleep(30)


class BrokenAgent(Agent):
    async def run(self, query, io):
        await io.delta("oops ")
        raise RuntimeError("boom")


class RefusingAgent(Agent):
    async def run(self, query, io):
        raise Forbidden("not for you")


class DomainRefusingAgent(Agent):
    """Refuses as a service would: a domain error, not a wire one."""

    async def run(self, query, io):
        raise PermissionDenied("not for you either")


class GreedyAgent(Agent):
    """Asks for data and does not catch the timeout."""

    async def run(self, query, io):
        await io.request_available_data()


class TimeoutBugAgent(Agent):
    async def run(self, query, io):
        raise TimeoutError("its own")


class DoubleAgent(Agent):
    async def run(self, query, io):
        await io.respond("one")
        await io.respond("two")


class ClarifyFreeformAgent(Agent):
    async def run(self, query, io):
        answer = await io.clarify("Anything to add?")
        await io.respond(f"you said {answer}")


class BadHookAgent(Agent):
    async def on_audio(self, audio, io):
        await io.emit("response", {"sneaky": True})


class SlowHookAgent(Agent):
    """A speech hook that reads one chunk a second: its queue fills up."""

    async def on_audio(self, audio, io):
        async for _chunk in audio:
            await asyncio.sleep(1)


class QuickAgent(Agent):
    """Answers at once, without callbacks."""

    async def run(self, query, io):
        await io.respond("ok")


class BriskAgent(SlowAgent):
    """``SlowAgent`` at 20 ms a word: 1.2 s of answer, enough to drop mid-way."""

    delay = 0.02


class StoryAgent(ReferenceAgent):
    """The reference agent, except that a query starting with "story" streams
    ``LONG_ANSWER`` slowly (for end-to-end resume tests on one server)."""

    async def run(self, query, io):
        if query.text.startswith("story"):
            await BriskAgent().run(query, io)
        else:
            await super().run(query, io)
