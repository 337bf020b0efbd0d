"""The deploy/ files agree with the drain's knobs and the server's wire needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from realtime.conf import realtime_settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_systemd_waits_longer_than_the_drain():
    unit = (DEPLOY / "systemd" / "realtime.service").read_text()
    assert "KillSignal=SIGTERM" in unit
    assert "manage.py serve" in unit
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    deadline = re.search(r"DRAIN_DEADLINE=(\d+)", unit)
    configured = float(deadline.group(1)) if deadline else 0.0
    assert stop > max(configured, realtime_settings.DRAIN_DEADLINE)


def test_nginx_upgrades_sockets_and_checks_readiness():
    site = (DEPLOY / "nginx" / "realtime.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in site
    assert "location = /readyz" in site
    timeout = int(re.search(r"proxy_read_timeout (\d+)s;", site).group(1))
    assert timeout > realtime_settings.HEARTBEAT_INTERVAL * 10


def test_dashboard_queries_the_alerted_series():
    dashboard = json.loads((DEPLOY / "grafana" / "realtime.json").read_text())
    queries = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel["targets"]
    )
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    for name in (
        "realtime_connections_accepted_total",
        "realtime_closes_total",
        "realtime_fanout_seconds_bucket",
        "realtime_camera_fps",
    ):
        assert name in queries and name in rules
