"""The five workloads, driven from the load generator's main process via the pool."""

from __future__ import annotations

import time

import numpy as np

from .hist import merge, summary
from .pool import Pool, split
from .probe import ServerProbe


def _connect(
    pool: Pool, role: str, urls: list[str], p: dict, wait_first: bool = True
) -> dict:
    """Connect urls spread over the workers; return totals and per-connection times."""
    parts = split(urls, pool.size)
    conc = max(1, p.get("concurrency", 100) // pool.size)
    limit = p.get("connect_limit_s", 120.0)
    kws = [
        dict(role=role, urls=u, concurrency=conc, wait_first=wait_first, limit=limit)
        for u in parts
    ]
    res = pool.call_all("connect", kws, timeout=limit + 30)
    ms = [m for r in res for m in r["ms"]]
    errors = [e for r in res for e in r["errors"]][:5]
    return {
        "ok": len(ms),
        "failed": sum(r["failed"] for r in res),
        "errors": errors,
        "ms": ms,
    }


def _quiesce(pool: Pool, idle: float = 0.5, limit: float = 30.0) -> None:
    pool.call_all(
        "quiesce", [dict(idle=idle, limit=limit)] * pool.size, timeout=limit + 10
    )


def _stats(pool: Pool, role: str) -> dict:
    res = pool.call_all("stats", [dict(role=role)] * pool.size, timeout=60)
    per_conn = [c for r in res for c in r["per_conn"]]
    firsts = [r["first_ns"] for r in res if r["first_ns"]]
    return {
        "count": sum(r["count"] for r in res),
        "first_ns": min(firsts) if firsts else 0,
        "last_ns": max(r["last_ns"] for r in res),
        "hist": merge([r["hist"] for r in res]),
        "per_conn": per_conn,
        "closed": sum(r["closed"] for r in res),
        "rate_limited": sum(r["rate_limited"] for r in res),
    }


def _warm_up(pool: Pool, spec: dict, settle: float) -> None:
    """A few sockets opened and closed first (imports, caches), then a pause."""
    pool.call(0, "connect", role="sub", urls=spec["warm_urls"], timeout=60)
    pool.call_all("close_all")
    time.sleep(settle)


def _rss_figures(rss0: float, rss1: float, sockets: int) -> dict:
    """The server's RSS before and after, and per socket held."""
    return {
        "rss_before_mb": rss0,
        "rss_after_mb": rss1,
        "rss_per_conn_kb": round((rss1 - rss0) * 1024 / sockets, 1),
    }


def _drain(pool: Pool, expected: int, limit: float) -> float:
    """Wait for the expected deliveries, or no progress for 2 s, or limit."""
    t0 = last_change = time.monotonic()
    seen = -1
    while time.monotonic() - t0 < limit:
        got = sum(pool.call_all("progress", timeout=30))
        now = time.monotonic()
        if got >= expected or now - last_change > 2.0:
            break
        if got != seen:
            seen, last_change = got, now
        time.sleep(0.1)
    return round(time.monotonic() - t0, 2)


def _w1_phase(pool: Pool, probe: ServerProbe, n: int, send: dict, p: dict) -> dict:
    pool.call_all("reset")
    ph = probe.phase()
    s = pool.call(0, "send", timeout=send["duration"] + 30, pad=p.get("pad", 0), **send)
    cpu = ph.stop()
    expected = s["sent"] * n
    drain_s = _drain(pool, expected, p.get("drain_max_s", 10.0))
    st = _stats(pool, "sub")
    span = max(s["t1_ns"], st["last_ns"]) - s["t0_ns"]
    span = max(1e-9, span / 1e9)
    return {
        "offered": f"{send['rate']} msg/s"
        if send["mode"] == "rate"
        else f"window {send['window']}",
        "messages_sent": s["sent"],
        "msgs_per_s": round(s["sent"] / max(1e-9, (s["t1_ns"] - s["t0_ns"]) / 1e9), 2),
        "expected": expected,
        "deliveries": st["count"],
        "lost": max(0, expected - st["count"]),
        "deliveries_per_s": round(st["count"] / span, 1),
        **summary(st["hist"]),
        **cpu,
        "drain_s": drain_s,
        "min_per_sub": min(st["per_conn"], default=0),
        "closed_subs": st["closed"],
        "rate_limited": st["rate_limited"],
    }


def w1(pool: Pool, spec: dict, probe: ServerProbe, log) -> dict:
    """Fan-out: N subscribers + 1 sender; fixed rate, then closed-loop saturation."""
    p = spec["params"]
    out = {}
    for case in spec["cases"]:
        n = len(case["urls"])
        log(f"W1 n={n}: connecting")
        c = _connect(pool, "sub", case["urls"], p)
        res: dict = {
            "subscribers": c["ok"],
            "connect_failed": c["failed"],
            "errors": c["errors"],
        }
        if c["ok"]:
            pool.call(0, "connect_sender", url=case["sender_url"], timeout=60)
            _quiesce(pool)
            phases = {
                "fixed": dict(
                    mode="rate", rate=p["rate"], window=0, duration=p["fixed_s"]
                ),
                "saturation": dict(
                    mode="window", rate=0, window=p["window"], duration=p["sat_s"]
                ),
            }
            for name, send in phases.items():
                log(f"W1 n={n}: {name}")
                res[name] = _w1_phase(pool, probe, c["ok"], send, p)
                _quiesce(pool)
        pool.call_all("close_all")
        out[f"n{n}"] = res
        time.sleep(0.5)
    return out


def w2(pool: Pool, spec: dict, probe: ServerProbe, log) -> dict:
    """Connections: N sockets connect and join; conn/s and server RSS per socket."""
    p = spec["params"]
    _warm_up(pool, spec, p.get("settle_s", 1.0))
    rss0 = probe.rss_mb()
    log(f"W2: connecting {len(spec['urls'])}")
    t0 = time.monotonic()
    ph = probe.phase()
    c = _connect(pool, "sub", spec["urls"], p)
    dt = time.monotonic() - t0
    cpu = ph.stop()
    time.sleep(p.get("settle_s", 1.0))
    rss1 = probe.rss_mb()
    ok = max(1, c["ok"])
    ms = np.array(c["ms"] or [0.0])
    pool.call_all("close_all")
    return {
        "n": len(spec["urls"]),
        "connected": c["ok"],
        "failed": c["failed"],
        "errors": c["errors"],
        "seconds": round(dt, 2),
        "conn_per_s": round(c["ok"] / dt, 1),
        "connect_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "connect_p99_ms": round(float(np.percentile(ms, 99)), 2),
        "server_cpu_ms_per_conn": round(10 * cpu["server_cpu_pct"] * dt / ok, 3),
        **cpu,
        **_rss_figures(rss0, rss1, ok),
    }


def w3(pool: Pool, spec: dict, probe: ServerProbe, log) -> dict:
    """Round trips: closed-loop ping → pong clients."""
    p = spec["params"]
    c = _connect(pool, "pinger", spec["urls"], p)
    _quiesce(pool)
    pool.call_all("reset")
    log(f"W3: {c['ok']} clients for {p['duration_s']} s")
    ph = probe.phase()
    runs = pool.call_all(
        "run_pingers",
        [dict(duration=p["duration_s"])] * pool.size,
        timeout=p["duration_s"] + 30,
    )
    cpu = ph.stop()
    st = _stats(pool, "pinger")
    span = (max(r["t1_ns"] for r in runs) - min(r["t0_ns"] for r in runs)) / 1e9
    pool.call_all("close_all")
    return {
        "clients": c["ok"],
        "connect_failed": c["failed"],
        "round_trips": st["count"],
        "rtt_per_s": round(st["count"] / max(1e-9, span), 1),
        **summary(st["hist"]),
        "min_per_client": min(st["per_conn"], default=0),
        "rate_limited": st["rate_limited"],
        **cpu,
    }


def _fps(pool: Pool) -> list[int]:
    return [n for r in pool.call_all("viewer_counts") for n in r]


def w4(pool: Pool, spec: dict, probe: ServerProbe, log) -> dict:
    """Camera: frames to acking viewers, then a stalled one; others' fps, memory."""
    p = spec["params"]
    c = _connect(
        pool, "viewer", spec["viewer_urls"], p, wait_first=spec.get("wait_first", True)
    )
    pool.call(
        0,
        "publish_start",
        url=spec["publish_url"],
        fps=p["fps"],
        frame_bytes=p["frame_bytes"],
    )
    time.sleep(1.0)
    pool.call_all("reset")
    log(f"W4: {c['ok']} viewers, {p['measure_s']} s")
    t0 = time.monotonic()
    ph = probe.phase()
    time.sleep(p["measure_s"])
    counts = _fps(pool)
    dt = time.monotonic() - t0
    cpu = ph.stop()
    st = _stats(pool, "viewer")
    fps = [n / dt for n in counts] or [0.0]
    before = {
        "viewers": c["ok"],
        "connect_failed": c["failed"],
        "errors": c["errors"],
        "fps_offered": p["fps"],
        "fps_mean": round(float(np.mean(fps)), 2),
        "fps_min": round(min(fps), 2),
        **summary(st["hist"]),
        **cpu,
    }
    log(f"W4: stalled viewer added, {p['stall_s']} s")
    rss_start = probe.rss_mb()
    pool.call(pool.size - 1, "stall", url=spec["stall_url"], timeout=30)
    series = []
    prev, tprev = _fps(pool), time.monotonic()
    for _ in range(int(p["stall_s"])):
        time.sleep(max(0.0, tprev + 1.0 - time.monotonic()))
        cur, now = _fps(pool), time.monotonic()
        rate = [(a - b) / (now - tprev) for a, b in zip(cur, prev, strict=True)] or [
            0.0
        ]
        series.append(
            {"fps_mean": round(float(np.mean(rate)), 2), "rss_mb": probe.rss_mb()}
        )
        prev, tprev = cur, now
    pub = pool.call(0, "publish_stop")
    pool.call_all("close_all")
    rss = [s["rss_mb"] for s in series] or [rss_start]
    fps_s = [s["fps_mean"] for s in series] or [0.0]
    tail = fps_s[-max(1, len(fps_s) // 3) :]
    stalled = {
        "seconds": len(series),
        "fps_mean": round(float(np.mean(fps_s)), 2),
        "fps_min_1s": min(fps_s),
        "fps_last_third": round(float(np.mean(tail)), 2),
        "rss_start_mb": rss_start,
        "rss_end_mb": rss[-1],
        "rss_max_mb": max(rss),
        "rss_growth_mb": round(rss[-1] - rss_start, 2),
        "publisher_sent": pub.get("sent"),
        "publisher_skipped_backpressure": pub.get("skipped_backpressure"),
        "series": series,
    }
    return {"before_stall": before, "with_stall": stalled}


def _w5_phase(
    pool: Pool, probe: ServerProbe, phase: str, send: dict, recipients: int, p: dict
) -> dict:
    """One W5 phase: the phase's senders send; every device counts what it gets."""
    pool.call_all("reset")
    senders = pool.call_all("m_senders", [dict(phase=phase)] * pool.size)
    total = max(1, sum(senders))
    kws = [{**send, "phase": phase, "rate": send["rate"] * n / total} for n in senders]
    ph = probe.phase()
    runs = pool.call_all("m_send", kws, timeout=send["duration"] + 30)
    cpu = ph.stop()
    sent = sum(r["sent"] for r in runs)
    t0 = min(r["t0_ns"] for r in runs)
    t1 = max(r["t1_ns"] for r in runs)
    expected = sent * recipients
    drain_s = _drain(pool, expected, p.get("drain_max_s", 10.0))
    st = _stats(pool, "dev")
    span = max(1e-9, (max(t1, st["last_ns"]) - t0) / 1e9)
    offered = (
        f"{send['rate']} msg/s"
        if send["mode"] == "rate"
        else f"window {send['window']}"
    )
    return {
        "offered": offered,
        "senders": sum(senders),
        "recipients_per_msg": recipients,
        "messages_sent": sent,
        "msgs_per_s": round(sent / max(1e-9, (t1 - t0) / 1e9), 2),
        "expected": expected,
        "deliveries": st["count"],
        "lost": max(0, expected - st["count"]),
        "deliveries_per_s": round(st["count"] / span, 1),
        **summary(st["hist"]),
        **cpu,
        "drain_s": drain_s,
        "closed_devices": st["closed"],
        "rate_limited": st["rate_limited"],
    }


def w5(pool: Pool, spec: dict, probe: ServerProbe, log) -> dict:
    """Messenger: users' devices subscribed to their conversations; direct senders
    at a fixed total rate then closed loop, then one sender in the big group."""
    p = spec["params"]
    devices = spec["devices"]
    heard: dict[str, int] = {}
    for d in devices:
        for cid in d["subscribe"]:
            heard[cid] = heard.get(cid, 0) + 1
    direct = next((d["sends"]["direct"] for d in devices if "direct" in d["sends"]), "")
    group = next((d["sends"]["group"] for d in devices if "group" in d["sends"]), "")
    log(f"W5: connecting and subscribing {len(devices)} devices")
    t0 = time.monotonic()
    parts = split(devices, pool.size)
    conc = max(1, p.get("concurrency", 100) // pool.size)
    limit = p.get("connect_limit_s", 180.0)
    res = pool.call_all(
        "m_connect",
        [dict(devices=d, concurrency=conc, limit=limit) for d in parts],
        timeout=limit + 30,
    )
    ms = np.array([m for r in res for m in r["ms"]] or [0.0])
    out: dict = {
        "users": spec["users"],
        "devices": len(devices),
        "connected": sum(r["ok"] for r in res),
        "connect_failed": sum(r["failed"] for r in res),
        "errors": [e for r in res for e in r["errors"]][:5],
        "connect_s": round(time.monotonic() - t0, 2),
        "connect_p99_ms": round(float(np.percentile(ms, 99)), 2),
    }
    if not out["connected"]:
        return out
    _quiesce(pool)
    phases = [
        ("direct_fixed", "direct", "rate", p["direct_rate"], 0, p["fixed_s"]),
        ("direct_saturation", "direct", "window", 0, p["direct_window"], p["sat_s"]),
        ("group_saturation", "group", "window", 0, p["group_window"], p["sat_s"]),
    ]
    for name, phase, mode, rate, window, duration in phases:
        cid = direct if phase == "direct" else group
        if not cid:
            continue
        log(f"W5: {name}")
        send = dict(mode=mode, rate=rate, window=window, duration=duration)
        out[name] = _w5_phase(pool, probe, phase, send, heard[cid], p)
        _quiesce(pool)
    out["device_errors"] = [e for r in pool.call_all("m_errors") for e in r][:5]
    pool.call_all("close_all")
    return out


def fanout(pool: Pool, spec: dict, probe: ServerProbe, log) -> dict:
    """Fan-out with several senders (N3, N4): R receivers, then S tagged senders in
    the same room, each keeping `window` unechoed messages in flight for sat_s."""
    p = spec["params"]
    log(f"fanout: connecting {len(spec['urls'])} receivers")
    c = _connect(pool, "sub", spec["urls"], p)
    out: dict = {
        "receivers": c["ok"],
        "connect_failed": c["failed"],
        "errors": c["errors"],
    }
    if not c["ok"]:
        return out
    parts = split(spec["sender_urls"], pool.size)
    kws = [dict(urls=u) for u in parts]
    out["senders"] = sum(pool.call_all("connect_senders", kws, timeout=120))
    _quiesce(pool)
    pool.call_all("reset")
    log(f"fanout: {out['senders']} senders, window {p['window']}, {p['sat_s']} s")
    ph = probe.phase()
    send = dict(window=p["window"], duration=p["sat_s"], pad=p.get("pad", 0))
    runs = pool.call_all("send_window", [send] * pool.size, timeout=p["sat_s"] + 30)
    cpu = ph.stop()
    sent = sum(r["sent"] for r in runs)
    t0 = min(r["t0_ns"] for r in runs)
    t1 = max(r["t1_ns"] for r in runs)
    expected = sent * c["ok"]
    drain_s = _drain(pool, expected, p.get("drain_max_s", 10.0))
    st = _stats(pool, "sub")
    span = max(1e-9, (max(t1, st["last_ns"]) - t0) / 1e9)
    out.update(
        {
            "window": p["window"],
            "messages_sent": sent,
            "msgs_per_s": round(sent / max(1e-9, (t1 - t0) / 1e9), 2),
            "expected": expected,
            "deliveries": st["count"],
            "lost": max(0, expected - st["count"]),
            "deliveries_per_s": round(st["count"] / span, 1),
            **summary(st["hist"]),
            **cpu,
            "drain_s": drain_s,
            "min_per_sub": min(st["per_conn"], default=0),
            "rate_limited": st["rate_limited"],
        }
    )
    pool.call_all("close_all")
    return out


def idle(pool: Pool, spec: dict, probe: ServerProbe, log) -> dict:
    """Idle sockets (N5): N connect and join, then hold still for ``idle_s``,
    answering the server's pings; the server's CPU over that time and its RSS per
    socket."""
    p = spec["params"]
    _warm_up(pool, spec, p["settle_s"])
    rss0 = probe.rss_mb()
    log(f"idle: connecting {len(spec['urls'])}")
    c = _connect(pool, "sub", spec["urls"], p)
    _quiesce(pool)  # the joins' notices
    time.sleep(p["settle_s"])
    log(f"idle: {c['ok']} sockets for {p['idle_s']} s")
    ph = probe.phase()
    time.sleep(p["idle_s"])
    cpu = ph.stop()
    rss1 = probe.rss_mb()
    closed = _stats(pool, "sub")["closed"]
    pool.call_all("close_all")
    return _idle_result(
        spec, c["ok"], c["failed"], c["errors"], closed, cpu, rss0, rss1
    )


def _idle_result(spec, ok, failed, errors, closed, cpu, rss0, rss1) -> dict:
    held = max(1, ok)
    return {
        "n": len(spec["urls"]),
        "connected": ok,
        "failed": failed,
        "errors": errors,
        "idle_s": spec["params"]["idle_s"],
        "closed_while_idle": closed,
        "idle_cpu_pct": cpu["server_cpu_pct"],
        "idle_cpu_pct_per_10k": round(cpu["server_cpu_pct"] * 10_000 / held, 2),
        **cpu,
        **_rss_figures(rss0, rss1, held),
    }


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}
# The issue's workloads (N1-N4) by kind, the names the Node client uses too: W2's
# and W3's code measures connects and round trips whatever rooms the URLs name.
KINDS = {"connects": w2, "roundtrips": w3, "fanout": fanout, "idle": idle}
