"""Log-bucketed latency histograms (1 % resolution) that merge across processes."""

from __future__ import annotations

import math
from array import array

import numpy as np

BASE = 1.01  # bucket k holds latencies in [BASE**k, BASE**(k+1)) microseconds
_LOG_BASE = math.log(BASE)


def histogram(lat_ns: array) -> dict[int, int]:
    """Bucket an array of latencies in nanoseconds."""
    if not len(lat_ns):
        return {}
    us = np.maximum(np.frombuffer(lat_ns, dtype=np.int64) / 1000.0, 1.0)
    idx = np.floor(np.log(us) / _LOG_BASE).astype(np.int64)
    keys, counts = np.unique(idx, return_counts=True)
    return {int(k): int(c) for k, c in zip(keys, counts, strict=True)}


def merge(hists: list[dict[int, int]]) -> dict[int, int]:
    """Sum several histograms."""
    out: dict[int, int] = {}
    for h in hists:
        for k, c in h.items():
            out[int(k)] = out.get(int(k), 0) + c
    return out


def percentile(hist: dict[int, int], q: float) -> float | None:
    """Return the q-th percentile (0..100) in milliseconds, or None when empty."""
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, math.ceil(total * q / 100.0))
    seen = 0
    for k in sorted(hist):
        seen += hist[k]
        if seen >= rank:
            return round(BASE ** (k + 0.5) / 1000.0, 3)
    return None


def summary(hist: dict[int, int]) -> dict[str, float | int | None]:
    """p50 / p99 / max in milliseconds plus the sample count."""
    return {
        "samples": sum(hist.values()),
        "p50_ms": percentile(hist, 50),
        "p99_ms": percentile(hist, 99),
        "max_ms": percentile(hist, 100),
    }
