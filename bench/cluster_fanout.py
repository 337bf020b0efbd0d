"""Broadcast throughput of the hub's relay on one Redis and on a 3-node Redis Cluster.

Starts a Redis of its own and a local 3-node cluster (``scripts.services``), then, for
each, runs subscriber processes (each a hub with one member in every group, counting
deliveries) and publisher processes (each a hub publishing ``--messages`` broadcasts
round-robin over ``--groups`` groups, ``--concurrency`` in flight), all in the same
run. Prints, per setup, broadcasts published per second and deliveries per second
(relayed messages handed to a member, over all subscriber processes), and the CPU
each Redis process used while it ran.

    .venv/bin/python -m bench.cluster_fanout
    .venv/bin/python -m bench.cluster_fanout --groups 1000 --messages 50000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.services import (
    RedisClusterProcesses,
    free_port,
    start_redis_server,
    stop_process,
)

TICKS = os.sysconf("SC_CLK_TCK")


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.pop("REDIS_URL", None)  # the hubs are given their URL
    import django

    django.setup()


class Counter:
    """A member of every group: counts what is handed to it."""

    channel_name = "bench"

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    def deliver_now(self, event: dict) -> bool:
        self.count += 1
        self.last = time.time()
        return True

    async def hub_deliver(
        self, event: dict
    ) -> None:  # not called: deliver_now takes all
        self.deliver_now(event)


def _reporting(out: Any, work: Any) -> None:
    """Run ``work`` (a coroutine function); a failure is reported, not lost."""
    try:
        asyncio.run(work())
    except BaseException as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def _subscriber(url: str, groups: int, expected: int, ready: Any, out: Any) -> None:
    _django()

    async def run() -> None:
        from realtime.hub import Hub

        hub, counter = Hub(url, "bench"), Counter()
        for n in range(groups):
            await hub.join(f"g.{n}", counter)
        ready.put(True)
        deadline = time.monotonic() + 120
        while counter.count < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        out.put({"count": counter.count, "last": counter.last})
        await hub.close()

    _reporting(out, run)


def _publisher(
    url: str, groups: int, messages: int, concurrency: int, go: Any, out: Any
) -> None:
    _django()

    async def run() -> None:
        from realtime.hub import Hub

        hub = Hub(url, "bench")
        text = "x" * 100
        go.wait()
        started = time.time()
        for first in range(0, messages, concurrency):
            batch = range(first, min(first + concurrency, messages))
            await asyncio.gather(
                *(
                    hub.publish(f"g.{n % groups}", {"type": "t", "text": text})
                    for n in batch
                )
            )
        out.put({"started": started, "ended": time.time()})
        await hub.close()

    _reporting(out, run)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def run_setup(url: str, pids: list[int], args: argparse.Namespace) -> dict:
    """One measurement against the Redis (or cluster) at ``url``."""
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    expected = args.messages * args.publishers
    subs = [
        ctx.Process(target=_subscriber, args=(url, args.groups, expected, ready, out))
        for _ in range(args.subscribers)
    ]
    pubs = [
        ctx.Process(
            target=_publisher,
            args=(url, args.groups, args.messages, args.concurrency, go, out),
        )
        for _ in range(args.publishers)
    ]
    for process in subs + pubs:
        process.start()
    try:
        for _ in subs:
            ready.get(timeout=60)
        cpu_before = [_cpu_seconds(pid) for pid in pids]
        go.set()
        results = []
        for _ in subs + pubs:
            results.append(out.get(timeout=180))
            if "error" in results[-1]:
                raise RuntimeError(f"{url}: {results[-1]['error']}")
        cpu_after = [_cpu_seconds(pid) for pid in pids]
    finally:
        for process in subs + pubs:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
    published = [r for r in results if "started" in r]
    received = [r for r in results if "count" in r]
    start = min(r["started"] for r in published)
    publish_seconds = max(r["ended"] for r in published) - start
    deliver_seconds = max(r["last"] for r in received) - start
    delivered = sum(r["count"] for r in received)
    return {
        "url": url,
        "published": expected,
        "delivered": delivered,
        "expected_deliveries": expected * args.subscribers,
        "published_per_s": round(expected / publish_seconds),
        "delivered_per_s": round(delivered / deliver_seconds),
        "seconds": round(deliver_seconds, 2),
        "redis_cpu_s": [
            round(b - a, 2) for a, b in zip(cpu_before, cpu_after, strict=True)
        ],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--messages", type=int, default=20000, help="per publisher")
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="cluster-fanout-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        single = start_redis_server(workdir / "single", port)
        cluster = RedisClusterProcesses(workdir / "cluster")
        try:
            cluster.start()
            results["1 node"] = run_setup(
                f"redis://127.0.0.1:{port}/0", [single.pid], args
            )
            results["3 nodes"] = run_setup(cluster.url, cluster.pids(), args)
        finally:
            stop_process(single)
            cluster.stop()
    report = {
        "config": vars(args) | {"cores": os.cpu_count()},
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{args.publishers} publishers x {args.messages} broadcasts over "
            f"{args.groups} groups; {args.subscribers} subscriber processes in every "
            f"group; {os.cpu_count()} cores"
        )
        head = f"{'setup':8} {'published/s':>12} {'delivered/s':>12} {'lost':>6}"
        print(f"{head}  redis CPU s")
        for name, r in results.items():
            lost = r["expected_deliveries"] - r["delivered"]
            print(
                f"{name:8} {r['published_per_s']:>12} {r['delivered_per_s']:>12} "
                f"{lost:>6}  {r['redis_cpu_s']}"
            )
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
