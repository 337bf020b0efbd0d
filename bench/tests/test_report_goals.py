"""The issue's goals in the report: met only when they hold under both clients."""

from __future__ import annotations

from bench.report import goal_check, notes, table

N1_GOAL = ("N1", "conn_per_s", "ours_uvicorn", "baseline", 1.5)
MEMORY_GOAL = ("N1", "rss_per_conn_kb", "ours_uvicorn", None, 20.0)
FANOUT_GOAL = ("N4", "deliveries_per_s", "ours", "node_ws", 0.8)


def n1(ours: dict, base: dict) -> dict:
    return {"N1": {"ours_uvicorn": ours, "baseline": base}}


def test_a_ratio_goal_is_met_only_under_both_clients():
    base = {"python": {"conn_per_s": 100}, "node": {"conn_per_s": 200}}
    both = {"python": {"conn_per_s": 160}, "node": {"conn_per_s": 300}}
    one = {"python": {"conn_per_s": 160}, "node": {"conn_per_s": 280}}

    assert goal_check(n1(both, base), N1_GOAL) == (["1.60x", "1.50x"], "yes")
    assert goal_check(n1(one, base), N1_GOAL) == (["1.60x", "1.40x"], "no")


def test_a_goal_missing_a_client_is_unproven_not_met():
    base = {"python": {"conn_per_s": 100}, "node": {"skipped": "no node"}}
    ours = {"python": {"conn_per_s": 200}, "node": {"skipped": "no node"}}

    cells, met = goal_check(n1(ours, base), N1_GOAL)

    assert cells == ["2.00x", "-"]
    assert met == "unproven (no node figure)"


def test_a_bound_goal_compares_the_target_s_own_value():
    ours = {"python": {"rss_per_conn_kb": 19.5}, "node": {"rss_per_conn_kb": 21.0}}

    assert goal_check(n1(ours, {}), MEMORY_GOAL) == (["19.5", "21"], "no")


def test_a_fan_out_that_lost_messages_does_not_meet_its_goal():
    results = {
        "N4": {
            "ours": {
                "python": {"deliveries_per_s": 90, "lost": 0},
                "node": {"deliveries_per_s": 90, "lost": 3},
            },
            "node_ws": {
                "python": {"deliveries_per_s": 100},
                "node": {"deliveries_per_s": 100},
            },
        }
    }

    cells, met = goal_check(results, FANOUT_GOAL)

    assert cells == ["0.90x", "0.90x (lost 3)"]
    assert met == "no"


def test_a_throttled_figure_does_not_meet_its_goal():
    base = {"python": {"rtt_per_s": 100}, "node": {"rtt_per_s": 100}}
    ours = {
        "python": {"rtt_per_s": 200},
        "node": {"rtt_per_s": 200, "rate_limited": 7},
    }
    goal = ("N2", "rtt_per_s", "ours", "baseline", 1.0)

    cells, met = goal_check({"N2": {"ours": ours, "baseline": base}}, goal)

    assert cells == ["2.00x", "2.00x (rate limited 7)"]
    assert met == "no"


def test_the_table_prints_each_client_s_rows_ratios_and_goals():
    results = {
        "N2": {
            "ours_uvicorn": {"python": {"rtt_per_s": 300}, "node": {"rtt_per_s": 320}},
            "baseline": {"python": {"rtt_per_s": 200}, "node": {"error": "boom"}},
        }
    }

    text = table(results)

    assert "N2 python.rtt_per_s" in text
    assert "N2 node.rtt_per_s" in text
    assert "1.50x" in text
    assert "N2 rtt_per_s ours_uvicorn/baseline >= 1.5x" in text
    assert "N2 baseline node: error: boom" in text


def test_notes_still_name_a_skipped_target_of_a_w_workload():
    assert notes("W1", {"ours": {"skipped": "why"}}) == ["  W1 ours: skipped: why"]


def test_a_w_only_table_has_no_goals():
    assert "goals" not in table({"W3": {"ours": {"rtt_per_s": 1.0}}})
