"""``--repeat N``: every target N times, alternating, each figure their median;
``--w1-ns``: W1 at the sizes asked for."""

from __future__ import annotations

import json

from bench import run


def test_median_and_spread_keep_the_results_shape():
    runs = [
        {"W3": {"ours": {"rtt_per_s": 100, "server": "daphne", "ok": True}}},
        {"W3": {"ours": {"rtt_per_s": 300, "server": "daphne", "ok": True}}},
        {"W3": {"ours": {"rtt_per_s": 200, "server": "daphne", "ok": False}}},
    ]
    assert run.median_of(runs) == {
        "W3": {"ours": {"rtt_per_s": 200, "server": "daphne", "ok": False}}
    }
    assert run.spread_of(runs) == {
        "W3": {"ours": {"rtt_per_s": [100, 300], "server": None, "ok": None}}
    }


def test_a_failed_run_is_not_hidden_by_the_median():
    runs = [{"ours": {"rtt_per_s": 100}}, {"ours": {"error": "server died"}}]
    assert run.median_of(runs) == {"ours": {"error": "server died"}}


def test_a_key_missing_from_a_run_is_left_out():
    runs = [{"a": 1, "b": 2}, {"a": 3}]
    assert run.median_of(runs) == {"a": 2}


def test_repeat_alternates_targets_and_writes_medians(tmp_path, monkeypatch):
    order, figures = [], iter([10, 1000, 30, 3000, 20, 2000])

    def fake_run_target(name, workloads, cfg, args, cpus):
        order.append(name)
        assert cfg["W1"]["ns"] == [400]
        return {"W1": {"deliveries_per_s": next(figures)}}

    monkeypatch.setattr(run, "run_target", fake_run_target)
    monkeypatch.setattr(run, "table", lambda results: "")
    out = tmp_path / "r.json"
    argv = ["--targets", "baseline,ours", "--workloads", "W1", "--repeat", "3"]
    argv += ["--w1-ns", "400", "--no-pin", "--out", str(out)]
    assert run.main(argv) == 0
    assert order == ["baseline", "ours"] * 3
    results = json.loads(out.read_text())
    assert results == {
        "W1": {
            "baseline": {"deliveries_per_s": 20},
            "ours": {"deliveries_per_s": 2000},
        }
    }
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["repeat"] == 3
    assert meta["spread"]["W1"]["ours"]["deliveries_per_s"] == [1000, 3000]
