"""Worker processes driven synchronously over pipes, every call with a timeout."""

from __future__ import annotations

import multiprocessing as mp

from . import worker


class WorkerError(RuntimeError):
    """A worker failed or did not answer in time."""


class Pool:
    """Start n workers; call one, or all with per-worker arguments."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("fork")
        self.conns = []
        self.procs = []
        for i in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker.main, args=(child, i), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)

    @property
    def size(self) -> int:
        """Number of workers."""
        return len(self.conns)

    def _recv(self, i: int, name: str, timeout: float):
        if not self.conns[i].poll(timeout):
            raise WorkerError(
                f"worker {i}: {name} did not answer within {timeout:.0f} s"
            )
        status, res = self.conns[i].recv()
        if status != "ok":
            raise WorkerError(res)
        return res

    def call(self, i: int, name: str, timeout: float = 60.0, **kw):
        """Run one command on worker i."""
        self.conns[i].send((name, kw))
        return self._recv(i, name, timeout)

    def call_all(
        self, name: str, kws: list[dict] | None = None, timeout: float = 60.0
    ) -> list:
        """Run one command on every worker at once (kws[i] are worker i's arguments)."""
        kws = kws or [{} for _ in self.conns]
        for conn, kw in zip(self.conns, kws, strict=True):
            conn.send((name, kw))
        return [self._recv(i, name, timeout) for i in range(self.size)]

    def close(self) -> None:
        """Ask workers to exit, then make sure they are gone."""
        for conn in self.conns:
            try:
                conn.send(("exit", {}))
            except OSError:
                pass
        for p in self.procs:
            p.join(3.0)
            if p.is_alive():
                p.terminate()
                p.join(2.0)


def split(items: list, n: int) -> list[list]:
    """Deal items round-robin into n lists."""
    return [items[i::n] for i in range(n)]
