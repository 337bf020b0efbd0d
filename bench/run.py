"""Orchestrator: start each server, run the workloads, print and save the results.

.venv/bin/python -m bench.run --quick --targets baseline,naive_channels
.venv/bin/python -m bench.run                      # full run, every target and workload
.venv/bin/python -m bench.run --targets trivial --workloads W1 --window 16  # ceiling
.venv/bin/python -m bench.run --workloads N1,N2,N3,N4,N5  # the issue's, both clients
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

if __package__ in (None, ""):  # `python bench/run.py` works too
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.node import NodeUnavailable, ensure_installed
from bench.report import table
from bench.targets import load
from bench.targets.base import ISSUE_WORKLOADS, PY, ROOT, Target

RESULTS = ROOT / "bench" / "results"
ALL_WORKLOADS = ["W1", "W2", "W3", "W4"]  # W5 is opt-in: --workloads W5
# The performance issue's table, opt-in too; each runs under every --client.
ISSUE = sorted(ISSUE_WORKLOADS)
KNOWN_WORKLOADS = [*ALL_WORKLOADS, "W5", *ISSUE]
# What each load client implements an N workload as (`kind` in the spec).
KIND = {
    "N1": "connects",
    "N2": "roundtrips",
    "N3": "fanout",
    "N4": "fanout",
    "N5": "idle",
}
CLIENTS = {"python": "bench.loadgen", "node": "bench.node"}
# Without --targets, a target runs only if it supports a requested workload.
DEFAULT_TARGETS = (
    "baseline",
    "baseline_messenger",
    "naive_channels",
    "node_ws",
    "ours",
    "ours_uvicorn",
)
QUIET_PCT = 25.0  # --quiet-wait: "quiet" is under a quarter of one core busy

FULL = {
    "W1": {
        "ns": [100, 1000],
        "rate": 2.0,
        "fixed_s": 10.0,
        "sat_s": 10.0,
        "window": 4,
        "concurrency": 100,
    },
    "W2": {"n": 2000, "concurrency": 100, "settle_s": 1.5},
    "W3": {"n": 50, "duration_s": 10.0, "concurrency": 50},
    "W4": {
        "viewers": 20,
        "fps": 30.0,
        "frame_bytes": 50_000,
        "measure_s": 10.0,
        "stall_s": 60,
        "concurrency": 20,
    },
    "W5": {
        "users": 1000,
        "directs": 500,
        "group": 1000,
        "direct_rate": 200.0,  # msg/s over all direct senders: 800 deliveries/s
        "direct_window": 1,  # per direct sender
        "group_window": 4,  # as W1's
        "fixed_s": 10.0,
        "sat_s": 10.0,
        "concurrency": 100,
    },
    # The issue's: 2,000 sockets into 200 sessions of 10, half of each room signed-in
    # users presenting a JWT (guests on targets without accounts)...
    "N1": {
        "sessions": 200,
        "size": 10,
        "users_share": 0.5,
        "concurrency": 100,
        "settle_s": 1.5,
    },
    # ... 50 clients' round trips, fan-out to 100 with 8 senders and to 1,000 (one
    # sender, as W1); a window of 4 unechoed messages per sender, as W1's.
    "N2": {"n": 50, "duration_s": 10.0, "concurrency": 50},
    "N3": {
        "receivers": 100,
        "senders": 8,
        "window": 4,
        "sat_s": 10.0,
        "concurrency": 100,
    },
    "N4": {
        "receivers": 1000,
        "senders": 1,
        "window": 4,
        "sat_s": 10.0,
        "concurrency": 100,
    },
    # ... and 10,000 idle sockets on one process (1,000 sessions of 10), heartbeats
    # on at the server's defaults (a ping every 30 s, answered): server CPU over
    # 61 s (two beats each) and RSS per socket.
    "N5": {
        "sessions": 1000,
        "size": 10,
        "users_share": 0.5,
        "concurrency": 100,
        "settle_s": 3.0,
        "idle_s": 61.0,
        "connect_limit_s": 240.0,
    },
}
QUICK = {
    "W1": {**FULL["W1"], "ns": [100, 1000], "fixed_s": 3.0, "sat_s": 3.0},
    "W2": {**FULL["W2"], "n": 500, "settle_s": 1.0},
    "W3": {**FULL["W3"], "n": 20, "duration_s": 3.0},
    "W4": {**FULL["W4"], "viewers": 10, "measure_s": 3.0, "stall_s": 5},
    "W5": {
        **FULL["W5"],
        "users": 200,
        "directs": 100,
        "group": 200,
        "direct_rate": 100.0,
        "fixed_s": 3.0,
        "sat_s": 3.0,
    },
    "N1": {**FULL["N1"], "sessions": 50, "settle_s": 1.0},
    "N2": {**FULL["N2"], "n": 20, "duration_s": 3.0},
    "N3": {**FULL["N3"], "sat_s": 3.0},
    "N4": {**FULL["N4"], "sat_s": 3.0},
    "N5": {**FULL["N5"], "sessions": 200, "idle_s": 31.0},  # one beat each
}


def build_spec(target: Target, workload: str, p: dict) -> dict:
    """Ask the target for rooms or streams; describe the workload for the loadgen."""
    if workload in KIND:
        return {"kind": KIND[workload], **issue_spec(target, workload, p)}
    if workload == "W1":
        cases = []
        for n in p["ns"]:
            room = target.session_room(n)
            cases.append({"urls": room.urls, "sender_url": room.sender_url})
        return {"cases": cases, "params": p}
    if workload == "W2":
        return {
            "warm_urls": target.session_room(10).urls,
            "urls": target.session_room(p["n"]).urls,
            "params": p,
        }
    if workload == "W3":
        return {"urls": target.session_room(p["n"]).urls, "params": p}
    if workload == "W5":
        m = target.messenger(p["users"], p["directs"], p["group"])
        return {"devices": m.devices, "users": m.users, "params": p}
    s = target.stream(p["viewers"])
    return {
        "publish_url": s.publish_url,
        "viewer_urls": s.viewer_urls,
        "stall_url": s.stall_url,
        "wait_first": s.wait_first,
        "params": p,
    }


def issue_spec(target: Target, workload: str, p: dict) -> dict:
    """URLs of an N workload, the same for both load clients."""
    if workload in ("N1", "N5"):
        warm = target.session_rooms(1, 10, p["users_share"])
        rooms = target.session_rooms(p["sessions"], p["size"], p["users_share"])
        return {
            "warm_urls": [u for r in warm for u in r],
            "urls": [u for r in rooms for u in r],
            "params": p,
        }
    if workload == "N2":
        return {"urls": target.session_room(p["n"]).urls, "params": p}
    # N3, N4: receivers join first, then the senders (members too, not counted)
    n = p["receivers"]
    room = target.session_room(n + p["senders"] - 1)
    return {
        "urls": room.urls[:n],
        "sender_urls": [*room.urls[n:], room.sender_url],
        "params": p,
    }


def budget(workload: str, p: dict) -> float:
    """Generous upper bound, in seconds, for one load-generator run."""
    if workload in ("N3", "N4"):
        return 120 + p["sat_s"] + 60
    if workload == "N2":
        return 90 + p["duration_s"]
    if workload == "W1":
        return 60 + len(p["ns"]) * (p["fixed_s"] + p["sat_s"] + 120)
    if workload == "N5":
        return 120 + p["connect_limit_s"] + p["idle_s"]
    if workload in ("W2", "N1"):
        return 240
    if workload == "W3":
        return 90 + p["duration_s"]
    if workload == "W5":  # connecting (at most 180 s), then three phases and drains
        return 300 + p["fixed_s"] + 2 * p["sat_s"] + 3 * 60
    return 90 + p["measure_s"] + p["stall_s"] * 1.5


def run_loadgen(
    spec: dict, cpus: set[int] | None, tag: str, module: str = "bench.loadgen"
) -> dict:
    """Run `python -m <module>` (a load client) as its own process group, killed if
    it overruns."""
    tmp = RESULTS / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = tmp / f"spec-{tag}.json", tmp / f"out-{tag}.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    cmd = [PY, "-m", module, "--spec", str(spec_path), "--out", str(out_path)]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if cpus:
        os.sched_setaffinity(proc.pid, cpus)
    try:
        proc.wait(spec["deadline_s"] + 30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return {
            "error": f"load generator overran {spec['deadline_s'] + 30:.0f} s, killed"
        }
    if not out_path.exists():
        return {
            "error": f"load generator exited with {proc.returncode} and wrote nothing"
        }
    return json.loads(out_path.read_text())


class StartFailed(RuntimeError):
    """The server did not start: the target's remaining workloads are skipped."""


def run_one(
    target: Target, workload: str, p: dict, args, cpus: tuple, client: str = "python"
) -> dict:
    """Fresh server, set up, load, stop; a failed setup skips only this workload."""
    t0 = time.monotonic()
    name = f"{target.name}-{workload}" + (f"-{client}" if workload in KIND else "")
    log = RESULTS / "logs" / f"{name}.log"
    try:
        target.start(log, cpus=cpus[0])
    except Exception as exc:
        raise StartFailed(f"{type(exc).__name__}: {exc}") from exc
    try:
        spec = build_spec(target, workload, p)
        print(f"  setup {time.monotonic() - t0:.0f} s", flush=True)
    except Exception as exc:
        target.stop()
        why = f"setup failed: {type(exc).__name__}: {exc}"
        print(f"SKIP {target.name} {workload}: {why}", flush=True)
        return {"skipped": why}
    try:
        spec.update(
            workload=workload,
            server_pid=target.pid,
            workers=args.client_procs,
            deadline_s=budget(workload, p),
        )
        res = run_loadgen(spec, cpus[1], name, CLIENTS[client])
    finally:
        target.stop()
    print(f"  {name.replace('-', ' ')}: {time.monotonic() - t0:.0f} s", flush=True)
    return res


def wait_quiet(max_s: float, threshold: float) -> float:
    """Wait up to max_s for the machine to go below threshold % busy (100 = a core)."""
    t0 = time.monotonic()
    busy = sum(psutil.cpu_percent(interval=1.0, percpu=True))
    while busy > threshold and time.monotonic() - t0 < max_s:
        busy = sum(psutil.cpu_percent(interval=1.0, percpu=True))
    return round(busy, 1)


def cpu_plan(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """Server on the first allowed core, load generator on the others (if any)."""
    allowed = sorted(os.sched_getaffinity(0))
    if not pin or len(allowed) < 2:
        return None, None
    return {allowed[0]}, set(allowed[1:])


def run_target(name: str, workloads: list[str], cfg: dict, args, cpus) -> dict:
    """Every workload on one target; {workload: result, or {"skipped": why}}."""
    try:
        target = load(name)
        target.prepare()
    except Exception as exc:
        print(f"SKIP {name}: {exc}", flush=True)
        return {w: {"skipped": f"setup failed: {exc}"} for w in workloads}
    out: dict = {}
    broken = None
    for w in workloads:
        if broken:
            out[w] = {"skipped": broken}
            continue
        if w not in target.workloads:
            out[w] = {"skipped": "workload not supported by this target"}
            continue
        if w not in KIND:
            out[w], broken = measure(target, w, cfg[w], args, cpus, "python")
            continue
        out[w] = {}
        for client in args.clients:  # N workloads: one fresh server per client
            if client in args.client_skip:
                out[w][client] = {"skipped": args.client_skip[client]}
            elif broken:
                out[w][client] = {"skipped": broken}
            else:
                out[w][client], broken = measure(target, w, cfg[w], args, cpus, client)
    target.finish()
    return out


def measure(
    target: Target, w: str, p: dict, args, cpus, client: str
) -> tuple[dict, str | None]:
    """One workload with one load client; (result, why the server is broken)."""
    busy = wait_quiet(args.quiet_wait, QUIET_PCT) if args.quiet_wait else None
    note = f" (machine {busy}% busy before)" if busy is not None else ""
    label = f"{w} {client}" if w in KIND else w
    print(f"{target.name} {label} ...{note}", flush=True)
    try:
        res = run_one(target, w, p, args, cpus, client)
    except StartFailed as exc:
        broken = f"server did not start: {exc}"
        print(f"SKIP {target.name}: {broken}", flush=True)
        return {"skipped": broken}, broken
    res["machine_busy_before_pct"] = busy
    return res, None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="short durations and smaller N (smoke run, < 2 min)",
    )
    ap.add_argument(
        "--targets",
        help="baseline,baseline_messenger,naive_channels,node_ws,ours,ours_uvicorn,"
        "trivial "
        "(default: those that support a requested workload, trivial excepted)",
    )
    ap.add_argument(
        "--workloads",
        default=",".join(ALL_WORKLOADS),
        help="W1,W2,W3,W4 (default), W5 (messenger) and N1,N2,N3,N4,N5 (the "
        "performance issue's, with both load clients) on request",
    )
    ap.add_argument(
        "--client",
        choices=["python", "node", "both"],
        default="both",
        help="load client for N1-N5: the Python one, Node.js ws, or both (default)",
    )
    ap.add_argument(
        "--client-procs",
        type=int,
        default=2,
        help="load-generator worker processes (default 2)",
    )
    ap.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin server and load generator to cores",
    )
    ap.add_argument("--window", type=int, help="W1 saturation: messages in flight (4)")
    ap.add_argument(
        "--stall-seconds",
        type=int,
        help="W4 stalled-viewer phase length (default 60, quick 5)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="before each workload wait up to S s for other processes to go quiet",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run every target N times, alternating (A B A B), and report each "
        "figure's median; the spread is in the .meta.json (default 1)",
    )
    ap.add_argument(
        "--w1-ns",
        metavar="N,N",
        help="W1's receiver counts (default 100,1000): e.g. the W5 group's size, to "
        "compare the messenger's group with a session of the same size",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    return ap.parse_args(argv)


def median_of(runs: list) -> object:
    """One result from several runs of the same shape: each number their median, a
    flag true only if it was in every run, anything else the first run's. A run
    that failed (an ``error``) fails the result: a median would hide it."""
    first = runs[0]
    if isinstance(first, dict):
        failed = [r for r in runs if isinstance(r, dict) and "error" in r]
        if failed:
            return failed[0]
        keys = [k for k in first if all(isinstance(r, dict) and k in r for r in runs)]
        return {k: median_of([r[k] for r in runs]) for k in keys}
    if all(isinstance(r, bool) for r in runs):
        return all(runs)
    if all(isinstance(r, int | float) for r in runs):
        return statistics.median(runs)
    return first


def spread_of(runs: list) -> object:
    """``[min, max]`` of each number over the runs, in the results' shape."""
    first = runs[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(r, dict) and k in r for r in runs)]
        return {k: spread_of([r[k] for r in runs]) for k in keys}
    if all(isinstance(r, int | float) and not isinstance(r, bool) for r in runs):
        return [min(runs), max(runs)]
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the requested targets × workloads and write the results JSON."""
    args = parse_args(argv)
    cfg = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.window:
        cfg["W1"]["window"] = args.window
    if args.w1_ns:
        cfg["W1"]["ns"] = [int(n) for n in args.w1_ns.split(",") if n]
    if args.stall_seconds is not None:
        cfg["W4"]["stall_s"] = args.stall_seconds
    workloads = [w for w in args.workloads.upper().split(",") if w]
    unknown = sorted(set(workloads) - set(KNOWN_WORKLOADS))
    if unknown:
        print(f"unknown workloads {', '.join(unknown)} (known: {KNOWN_WORKLOADS})")
        return 2
    if args.targets:
        targets = [t for t in args.targets.split(",") if t]
    else:
        targets = [t for t in DEFAULT_TARGETS if set(workloads) & load(t).workloads]
    args.clients = ["python", "node"] if args.client == "both" else [args.client]
    args.client_skip = {}
    if "node" in args.clients and set(workloads) & ISSUE_WORKLOADS:
        try:
            ensure_installed()  # npm ci of the pinned ws, once
        except NodeUnavailable as exc:
            args.client_skip["node"] = f"Node client unavailable: {exc}"
            print(f"SKIP node client: {exc}", flush=True)
    cpus = cpu_plan(args.pin)
    print(
        f"server cpus {cpus[0] or 'any'}, load generator cpus {cpus[1] or 'any'}, "
        f"{args.client_procs} procs"
    )
    runs: list[dict] = []
    started = time.monotonic()
    for round_ in range(max(1, args.repeat)):
        if args.repeat > 1:
            print(f"--- round {round_ + 1} of {args.repeat}", flush=True)
        results: dict = {w: {} for w in workloads}
        for name in targets:
            for w, res in run_target(name, workloads, cfg, args, cpus).items():
                results[w][name] = res
        runs.append(results)
    results = median_of(runs) if len(runs) > 1 else runs[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    meta = {
        "argv": sys.argv,
        "quick": args.quick,
        "config": {w: cfg[w] for w in workloads},
        "clients": args.clients,
        "cpus": {"server": sorted(cpus[0] or []), "loadgen": sorted(cpus[1] or [])},
        "client_procs": args.client_procs,
        "repeat": len(runs),
        "spread": spread_of(runs) if len(runs) > 1 else None,
        "seconds": round(time.monotonic() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=1))
    print()
    print(table(results))
    print(f"wrote {args.out} in {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
