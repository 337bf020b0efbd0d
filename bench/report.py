"""Turn nested results into a table of headline figures with ratios."""

from __future__ import annotations

# leaf name → which way is better ("+" higher, "-" lower, "=" context only, no ratio)
HEADLINE = {
    "deliveries_per_s": "+",
    "p50_ms": "-",
    "p99_ms": "-",
    "lost": "-",
    "server_cpu_pct": "-",
    "conn_per_s": "+",
    "connect_p99_ms": "-",
    "rss_per_conn_kb": "-",
    "server_cpu_ms_per_conn": "-",
    "failed": "-",
    "rtt_per_s": "+",
    "fps_mean": "+",
    "fps_min": "+",
    "fps_last_third": "+",
    "rss_growth_mb": "-",
    "publisher_skipped_backpressure": "-",
    "rate_limited": "-",
    "idle_cpu_pct": "-",
    "idle_cpu_pct_per_10k": "-",
    "closed_while_idle": "-",
    "loadgen_cpu_pct": "=",
    "other_cpu_pct": "=",
}
RATIOS = [
    ("ours", "baseline"),
    ("ours", "baseline_messenger"),
    ("ours_uvicorn", "baseline_messenger"),
    ("ours", "naive_channels"),
    ("ours_uvicorn", "baseline"),
    ("ours_uvicorn", "ours"),
    ("naive_channels", "baseline"),
    ("ours", "node_ws"),
    ("ours_uvicorn", "node_ws"),
    ("node_ws", "baseline"),
]
SHORT = {
    "naive_channels": "naive",
    "baseline": "base",
    "baseline_messenger": "base_m",
    "ours_uvicorn": "ours_uv",
    "node_ws": "node",
}
CLIENTS = ("python", "node")  # the load clients of the N workloads (run.py)
# The performance issue's goals, each met only if it holds under every client:
# (workload, metric, target, versus, bound): target ÷ versus ≥ bound, or with versus
# None, target's own value ≤ bound. A figure with messages lost or requests throttled
# (RATE_LIMITED) meets nothing: it is not the capacity the goal is about.
GOALS = [
    ("N1", "conn_per_s", "ours_uvicorn", "baseline", 1.5),
    ("N1", "conn_per_s", "ours", "baseline", 1.0),
    ("N1", "rss_per_conn_kb", "ours_uvicorn", None, 20.0),
    ("N2", "rtt_per_s", "ours_uvicorn", "baseline", 1.5),
    ("N2", "rtt_per_s", "ours", "baseline", 1.0),
    ("N3", "deliveries_per_s", "ours", "baseline", 1.5),
    ("N3", "deliveries_per_s", "ours_uvicorn", "baseline", 1.5),
    ("N4", "deliveries_per_s", "ours", "baseline", 2.0),
    ("N4", "deliveries_per_s", "ours_uvicorn", "baseline", 2.0),
    ("N4", "deliveries_per_s", "ours", "node_ws", 0.8),
    ("N4", "deliveries_per_s", "ours_uvicorn", "node_ws", 0.8),
    ("N5", "rss_per_conn_kb", "ours_uvicorn", None, 20.0),
    ("N5", "idle_cpu_pct_per_10k", "ours", None, 5.0),
    ("N5", "idle_cpu_pct_per_10k", "ours_uvicorn", None, 5.0),
]


def flatten(obj, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested dict, keyed by dotted path."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("series", "errors"):
                continue
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out[prefix] = obj
    return out


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def rows(workload: str, by_target: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows for one workload."""
    targets = list(by_target)
    flat = {t: flatten(r) for t, r in by_target.items()}
    paths: list[str] = []
    for t in targets:
        for p in flat[t]:
            if p.rsplit(".", 1)[-1] in HEADLINE and p not in paths:
                paths.append(p)
    ratios = [(a, b) for a, b in RATIOS if a in by_target and b in by_target]
    header = [
        "metric",
        "better",
        *targets,
        *(f"{SHORT.get(a, a)}/{SHORT.get(b, b)}" for a, b in ratios),
    ]
    body = []
    for p in paths:
        sense = HEADLINE[p.rsplit(".", 1)[-1]]
        better = {"+": "higher", "-": "lower", "=": "(info)"}[sense]
        vals = [flat[t].get(p) for t in targets]
        rats = []
        for a, b in ratios:
            va, vb = flat[a].get(p), flat[b].get(p)
            ok = sense != "=" and va is not None and vb
            rats.append(f"{va / vb:.2f}x" if ok else "-")
        body.append([f"{workload} {p}", better, *map(_fmt, vals), *rats])
    return header, body


def notes(workload: str, by_target: dict) -> list[str]:
    """One line per target (or target's client) that was skipped or failed."""
    out = []
    for t, r in by_target.items():
        parts = [(f"{t} {c}", r[c]) for c in CLIENTS if isinstance(r.get(c), dict)]
        for who, res in parts or [(t, r)]:
            why = res.get("skipped") or res.get("error")
            if why:
                out.append(
                    f"  {workload} {who}: "
                    f"{'skipped' if res.get('skipped') else 'error'}: {str(why)[:160]}"
                )
    return out


def goal_check(results: dict, goal: tuple) -> tuple[list[str], str]:
    """One goal's figure under each client and whether it is met under all of them."""
    workload, metric, target, versus, bound = goal
    by_target = results.get(workload, {})
    cells, verdicts = [], []
    for client in CLIENTS:
        mine = by_target.get(target, {}).get(client) or {}
        other = by_target.get(versus, {}).get(client) or {} if versus else {}
        value = mine.get(metric)
        if value is None or (versus and not other.get(metric)):
            cells.append("-")
            verdicts.append(None)
            continue
        spoiled = ", ".join(
            f"{k.replace('_', ' ')} {mine[k]}"
            for k in ("lost", "rate_limited")
            if mine.get(k)
        )
        if versus:
            value = value / other[metric]
            ok = value >= bound and not spoiled
            cells.append(f"{value:.2f}x" + (f" ({spoiled})" if spoiled else ""))
        else:
            ok = value <= bound and not spoiled
            cells.append(_fmt(value) + (f" ({spoiled})" if spoiled else ""))
        verdicts.append(ok)
    if False in verdicts:
        met = "no"
    elif None in verdicts:
        missing = [c for c, v in zip(CLIENTS, verdicts, strict=True) if v is None]
        met = f"unproven (no {', '.join(missing)} figure)"
    else:
        met = "yes"
    return cells, met


def goals(results: dict) -> list[str]:
    """The issue's goals for the N workloads present, one aligned line each."""
    present = [g for g in GOALS if g[0] in results]
    if not present:
        return []
    header = ["goal", *CLIENTS, "met"]
    body = []
    for g in present:
        workload, metric, target, versus, bound = g
        what = f"{target}/{versus} >= {bound}x" if versus else f"{target} <= {bound:g}"
        cells, met = goal_check(results, g)
        body.append([f"{workload} {metric} {what}", *cells, met])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(
            c.ljust(w) if i in (0, 3) else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in [header, *body]
    ]


def table(results: dict) -> str:
    """Render every workload as an aligned text table."""
    out = []
    for workload, by_target in results.items():
        header, body = rows(workload, by_target)
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        for r in [header, *body]:
            cells = (
                c.rjust(w) if i > 1 else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            out.append("  ".join(cells))
        out.extend(notes(workload, by_target))
        out.append("")
    lines = goals(results)
    if lines:
        out.extend(["goals (met only if they hold under both clients)", *lines, ""])
    return "\n".join(out)
