"""Per-viewer flow control as a pure class: in flight, pending, acks, gate, timeout."""

from __future__ import annotations

import pytest

from camera.flow import RateGate, ViewerFlow

pytestmark = pytest.mark.timeout(10)


def flow(max_in_flight: int = 2, ack_timeout: float = 10.0, **subscribe):
    f: ViewerFlow[str] = ViewerFlow(
        max_in_flight=max_in_flight, ack_timeout=ack_timeout
    )
    f.subscribe(
        subscribe.get("kinds", ["raw"]),
        poses=subscribe.get("poses", False),
        max_fps=subscribe.get("max_fps"),
    )
    return f


def test_at_most_max_in_flight_then_latest_wins() -> None:
    f = flow()
    sent = [f.offer("raw", seq, f"raw{seq}", now=seq * 0.033) for seq in range(1, 11)]

    assert sent[:2] == ["raw1", "raw2"]
    assert sent[2:] == [None] * 8  # never acked: nothing more goes out
    assert f.in_flight == [(1, "raw"), (2, "raw")]
    assert f.pending == {"raw": (10, "raw10")}  # one frame kept, the newest
    assert f.replaced == 7 and f.sent == 2

    assert f.ack(1, None, now=1.0) == ["raw10"]  # a slot frees: the newest goes
    assert f.in_flight == [(2, "raw"), (10, "raw")]
    assert f.pending == {}


def test_acks_are_cumulative_and_per_kind() -> None:
    f = flow(max_in_flight=4, kinds=["raw", "annotated"])
    for seq in (1, 2):
        for kind in ("raw", "annotated"):
            assert f.offer(kind, seq, f"{kind}{seq}", now=0.0)
    assert f.offer("raw", 3, "raw3", now=0.1) is None
    assert f.offer("annotated", 3, "annotated3", now=0.1) is None

    assert f.ack(2, "raw", now=1.0) == ["raw3", "annotated3"]  # both seq 1 and 2
    assert f.in_flight == [
        (1, "annotated"),
        (2, "annotated"),
        (3, "raw"),
        (3, "annotated"),
    ]
    assert f.ack(2, "raw", now=1.1) == []  # a duplicate ack changes nothing
    assert f.ack(3, None, now=1.2) == []  # every kind up to 3
    assert f.in_flight == [] and f.deadline() is None


def test_pending_frames_leave_oldest_first() -> None:
    f = flow(max_in_flight=1, kinds=["raw", "annotated"])
    assert f.offer("raw", 1, "raw1", now=0.0) == "raw1"
    assert f.offer("annotated", 1, "annotated1", now=0.0) is None
    assert f.offer("raw", 2, "raw2", now=0.1) is None
    assert f.ack(1, None, now=0.2) == ["annotated1"]
    assert f.ack(1, None, now=0.3) == ["raw2"]


def test_unsubscribed_kinds_are_not_sent_and_resubscribing_drops_pending() -> None:
    f = flow(max_in_flight=1, kinds=["raw", "annotated"])
    assert f.offer("depth", 1, "depth1", now=0.0) is None
    assert f.offer("raw", 1, "raw1", now=0.0) == "raw1"
    assert f.offer("annotated", 1, "annotated1", now=0.0) is None
    f.subscribe(["raw"], poses=True, max_fps=None)
    assert f.pending == {}  # the annotated frame waiting is gone
    assert f.in_flight == [(1, "raw")]  # what was sent is still owed
    assert f.wants_poses(2, now=0.1)


def test_ack_timeout_counts_only_while_frames_are_owed() -> None:
    f = flow(ack_timeout=5.0)
    assert f.deadline() is None and not f.expired(1000.0)  # nothing owed: never
    f.offer("raw", 1, "raw1", now=100.0)
    assert f.deadline() == 105.0
    f.offer("raw", 2, "raw2", now=103.0)
    assert f.deadline() == 105.0  # the clock started with the first frame owed
    assert not f.expired(104.9) and f.expired(105.0)
    f.ack(1, None, now=104.0)  # progress moves the deadline
    assert f.deadline() == 109.0
    f.ack(2, None, now=106.0)
    assert f.deadline() is None


def test_poses_follow_the_subscription_not_the_backpressure() -> None:
    f = flow(max_in_flight=1, poses=True)
    f.offer("raw", 1, "raw1", now=0.0)
    for seq in range(2, 50):
        f.offer("raw", seq, f"raw{seq}", now=seq / 30)
        assert f.wants_poses(seq, now=seq / 30)
    assert not flow(poses=False).wants_poses(1, now=0.0)


def test_max_fps_gates_frames_and_poses_together() -> None:
    f = flow(max_in_flight=100, poses=True, max_fps=10)
    offered = []
    for seq in range(1, 31):  # one second of a 30 fps source
        now = seq / 30
        poses = f.wants_poses(seq, now)
        frame = f.offer("raw", seq, seq, now) is not None
        assert poses == frame  # an overlay always has its image
        offered.append(frame)
    assert 9 <= sum(offered) <= 11
    assert f.skipped == 30 - sum(offered)


@pytest.mark.parametrize(("max_fps", "low", "high"), [(25, 24, 26), (15, 14, 16)])
def test_gate_reaches_its_rate_on_a_faster_source(max_fps, low, high) -> None:
    gate = RateGate(max_fps)
    admitted = sum(gate.admit(seq, seq / 30) for seq in range(300))  # 10 s at 30 fps
    assert low * 10 <= admitted <= high * 10


def test_gate_without_limit_and_repeated_seq() -> None:
    assert all(RateGate(None).admit(seq, 0.0) for seq in range(100))
    gate = RateGate(1)
    assert gate.admit(1, 0.0) and gate.admit(1, 0.0)  # same frame, same answer
    assert not gate.admit(2, 0.01) and not gate.admit(2, 5.0)
    assert gate.admit(3, 5.0)


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ViewerFlow(max_in_flight=0, ack_timeout=1.0)
