"""The Node.js side of the bench: the `ws` load client and the plain `ws` server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent
LOADGEN = NODE_DIR / "loadgen.mjs"
SERVER = NODE_DIR / "server.mjs"


class NodeUnavailable(RuntimeError):
    """node or npm is missing, or `npm ci` failed: the Node client cannot run."""


def node_binary() -> str:
    """The `node` on PATH; NodeUnavailable when there is none."""
    node = shutil.which("node")
    if not node:
        raise NodeUnavailable("node is not on PATH (Node.js 18 or later is needed)")
    return node


def ensure_installed(*, timeout: float = 300.0) -> None:
    """Install the pinned `ws` (package-lock.json) with `npm ci` unless it is there."""
    if (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        return
    node_binary()
    npm = shutil.which("npm")
    if not npm:
        raise NodeUnavailable("npm is not on PATH: cannot install bench/node")
    try:
        r = subprocess.run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeUnavailable(f"npm ci did not finish within {timeout:.0f} s") from exc
    if r.returncode:
        raise NodeUnavailable(f"npm ci failed: {(r.stderr or r.stdout)[-400:]}")


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Pin every thread a process has now: node starts its V8 and libuv threads
    before a parent can pin the main one, and threads keep their own affinity."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        tids = [int(t.name) for t in tasks if t.name.isdigit()]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:  # the thread ended meanwhile
            pass
