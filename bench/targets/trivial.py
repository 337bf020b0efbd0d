"""The trivial raw fan-out server: a ceiling for the load generator, not a contender."""

from __future__ import annotations

from .base import PY, OpenTarget


class Trivial(OpenTarget):
    """bench/baselines/trivial_fanout.py: every workload."""

    name = "trivial"

    def command(self, port: int) -> list[str]:
        """One asyncio (uvloop) process."""
        return [PY, "-m", "bench.baselines.trivial_fanout", "--port", str(port)]
