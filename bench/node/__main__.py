"""CLI: `python -m bench.node --spec spec.json --out result.json`, the Node client.

It runs `loadgen.mjs` on the spec the Python load generator takes and answers its
requests for server memory and CPU with the Python client's own probe, so both
clients' figures are read the same way; node inherits this process's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/node/__main__.py` works too
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.loadgen.probe import CpuPhase, ServerProbe
from bench.node import LOADGEN, NodeUnavailable, node_binary, pin_threads


def _alarm(signum, frame):
    raise TimeoutError("Node load client deadline reached")


def serve(proc: subprocess.Popen, probe: ServerProbe) -> dict:
    """Answer the client's probe requests until it sends its result."""
    phase: CpuPhase | None = None
    for line in proc.stdout:
        msg = json.loads(line)
        op = msg.get("op")
        if op == "result":
            return msg["value"]
        if op == "phase_start":
            phase, value = probe.phase(), None
        elif op == "phase_stop":
            value = phase.stop() if phase else {}
        elif op == "rss":
            value = probe.rss_mb()
        else:
            value = None
        proc.stdin.write(json.dumps({"id": msg.get("id"), "value": value}) + "\n")
        proc.stdin.flush()
    return {"error": f"node exited with {proc.wait()} before its result"}


def run(spec_path: str, deadline_s: int, server_pid: int | None) -> dict:
    """Start node on the spec, serve its probe, return its result (or an error)."""
    try:
        node = node_binary()
    except NodeUnavailable as exc:
        return {"error": str(exc)}
    proc = subprocess.Popen(
        [node, str(LOADGEN), "--spec", spec_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BENCH_NODE_PROBE": "stdio"},
    )
    pin_threads(proc.pid, os.sched_getaffinity(0))
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(deadline_s)
    try:
        return serve(proc, ServerProbe(server_pid))
    except (TimeoutError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        signal.alarm(0)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    """Run the spec's workload with the Node client and write its result as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", required=True, help="JSON: kind, params, urls, ...")
    ap.add_argument("--out", required=True, help="where to write the result JSON")
    args = ap.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    result = run(
        args.spec, int(spec.get("deadline_s", 600)), spec.get("server_pid") or None
    )
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
