"""Copilot tests: no query task outlives its test."""

from __future__ import annotations

import asyncio

import pytest

from realtime.copilot import runs


@pytest.fixture(autouse=True)
async def _no_leftover_queries():
    yield
    leftovers = [run.task for run in list(runs.RUNNING.values()) if run.task]
    for task in leftovers:
        task.cancel()
    if leftovers:
        await asyncio.gather(*leftovers, return_exceptions=True)
    runs.RUNNING.clear()
