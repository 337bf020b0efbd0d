"""CLI: `python -m bench.loadgen --spec spec.json --out result.json` (one workload)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from .pool import Pool
from .probe import ServerProbe
from .workloads import KINDS, WORKLOADS


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(f"  [loadgen {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _alarm(signum, frame):
    raise TimeoutError("load generator deadline reached")


def main(argv: list[str] | None = None) -> int:
    """Run the workload named in the spec and write its result as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--spec",
        required=True,
        help="JSON: workload, params, urls, server_pid, workers",
    )
    ap.add_argument("--out", required=True, help="where to write the result JSON")
    args = ap.parse_args(argv)
    with open(args.spec) as f:
        spec = json.load(f)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(spec.get("deadline_s", 600)))
    pool = Pool(int(spec.get("workers", 1)))
    try:
        run = KINDS[spec["kind"]] if "kind" in spec else WORKLOADS[spec["workload"]]
        result = run(pool, spec, ServerProbe(spec.get("server_pid")), log)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
        log(result["error"])
    finally:
        signal.alarm(0)
        pool.close()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
