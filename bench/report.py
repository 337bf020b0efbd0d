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
]
SHORT = {
    "naive_channels": "naive",
    "baseline": "base",
    "baseline_messenger": "base_m",
    "ours_uvicorn": "ours_uv",
}


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
    """One line per target that was skipped or failed."""
    out = []
    for t, r in by_target.items():
        why = r.get("skipped") or r.get("error")
        if why:
            out.append(
                f"  {workload} {t}: {'skipped' if r.get('skipped') else 'error'}: "
                f"{str(why)[:160]}"
            )
    return out


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
    return "\n".join(out)
