"""Seq-ordered delivery as a pure class: hold, release, read the hole, skip, reset."""

from __future__ import annotations

import pytest

from realtime.ordering import Filled, SeqOrder

pytestmark = pytest.mark.timeout(10)

WAIT = 0.5


def order(last: int = 0) -> SeqOrder[str]:
    return SeqOrder(last=last, gap_wait=WAIT)


def rows(*seqs: int) -> list[tuple[int, str]]:
    return [(seq, f"db{seq}") for seq in seqs]


def test_in_order_frames_pass_at_once() -> None:
    o = order(last=3)

    assert o.ready(4) and not o.ready(5) and not o.ready(3)
    o.done(4)
    assert o.last == 4
    assert o.offer(5, "f5", now=0.0) == ["f5"]
    assert o.offer(6, "f6", now=0.1) == ["f6"]
    assert o.last == 6 and o.held == 0
    assert o.deadline() is None and o.hole(now=100.0) is None


def test_done_never_moves_last_back() -> None:
    o = order(last=5)
    o.done(3)
    assert o.last == 5


def test_early_frames_are_held_then_released_in_order_when_the_gap_closes() -> None:
    o = order(last=1)

    assert o.offer(4, "f4", now=0.0) == []
    assert o.offer(3, "f3", now=0.1) == []
    assert o.held == 2 and o.last == 1
    # Something held: even the next seq goes through offer, not unbuffered.
    assert not o.ready(2)

    assert o.offer(2, "f2", now=0.2) == ["f2", "f3", "f4"]
    assert o.last == 4 and o.held == 0
    assert o.ready(5)
    assert o.deadline() is None


def test_old_and_duplicate_seqs_are_dropped() -> None:
    o = order(last=5)

    assert o.offer(5, "again", now=0.0) == []
    assert o.offer(2, "old", now=0.0) == []
    assert o.offer(7, "f7", now=0.0) == []
    assert o.offer(7, "dup", now=0.3) == []  # first copy kept, its wait unchanged
    assert o.held == 1
    assert o.deadline() == WAIT

    assert o.offer(6, "f6", now=0.4) == ["f6", "f7"]
    assert o.offer(7, "late", now=0.5) == []


def test_hole_only_after_the_oldest_held_frame_waited_gap_wait() -> None:
    o = order(last=2)
    o.offer(5, "f5", now=10.0)
    o.offer(8, "f8", now=10.2)

    assert o.deadline() == 10.0 + WAIT
    assert o.hole(now=10.0) is None
    assert o.hole(now=10.0 + WAIT - 0.01) is None
    assert o.hole(now=10.0 + WAIT) == (2, 8)  # after 2, up to the newest held


def test_deadline_follows_the_oldest_frame_still_held() -> None:
    o = order(last=2)
    o.offer(4, "f4", now=1.0)
    o.offer(7, "f7", now=1.3)

    assert o.offer(3, "f3", now=1.4) == ["f3", "f4"]  # 4 (waiting since 1.0) goes
    assert o.deadline() == 1.3 + WAIT
    assert o.hole(now=1.3 + WAIT - 0.01) is None
    assert o.hole(now=1.3 + WAIT) == (4, 7)


def test_a_fill_with_the_missing_rows_releases_everything_in_order() -> None:
    o = order(last=2)
    o.offer(5, "f5", now=0.0)
    o.offer(7, "f7", now=0.1)
    after, upto = o.hole(now=1.0)

    filled = o.fill(rows(3, 4, 5, 6, 7), upto=upto)

    # A held frame is kept: it is the one every other socket was sent.
    assert filled == Filled(["db3", "db4", "f5", "db6", "f7"], [])
    assert (after, upto) == (2, 7)
    assert o.last == 7 and o.held == 0 and o.deadline() is None
    assert o.offer(8, "f8", now=1.1) == ["f8"]


def test_seqs_storage_lacks_are_skipped_and_reported_then_frames_flow() -> None:
    o = order(last=2)
    o.offer(6, "f6", now=0.0)
    _, upto = o.hole(now=WAIT)

    # 3 and 5 rolled back: storage has only 4.
    frames, skipped = o.fill(rows(4), upto=upto)

    assert frames == ["db4", "f6"]
    assert skipped == [(3, 3), (5, 5)]
    assert o.last == 6 and o.held == 0
    assert o.ready(7)
    assert o.offer(7, "f7", now=1.0) == ["f7"]
    assert o.offer(5, "late", now=1.0) == []  # skipped for good


def test_a_run_of_missing_seqs_is_one_skipped_range() -> None:
    o = order(last=10)
    o.offer(15, "f15", now=0.0)

    assert o.fill([], upto=15) == Filled(["f15"], [(11, 14)])
    assert o.last == 15


def test_fill_ignores_delivered_rows_and_rows_it_was_not_asked_for() -> None:
    o = order(last=4)
    o.offer(7, "f7", now=0.0)

    filled = o.fill(rows(2, 3, 4, 5, 6, 7, 9), upto=7)

    assert filled == Filled(["db5", "db6", "f7"], [])
    assert o.last == 7 and o.held == 0  # 9 was not read for this hole: not kept


def test_frames_above_the_range_read_keep_waiting() -> None:
    o = order(last=2)
    o.offer(4, "f4", now=0.0)
    _, upto = o.hole(now=WAIT)  # (2, 4]: the read starts
    o.offer(7, "f7", now=0.6)  # arrives while storage is read; 5 and 6 may follow

    frames, skipped = o.fill(rows(), upto=upto)

    assert (frames, skipped) == (["f4"], [(3, 3)])
    assert o.last == 4 and o.held == 1  # 5 and 6 were never read: not skipped
    assert o.deadline() == 0.6 + WAIT
    assert o.offer(5, "f5", now=0.7) == ["f5"]
    assert o.offer(6, "f6", now=0.8) == ["f6", "f7"]


def test_a_gap_closed_while_storage_was_read_needs_nothing_from_the_rows() -> None:
    o = order(last=2)
    o.offer(4, "f4", now=0.0)
    _, upto = o.hole(now=WAIT)
    assert o.offer(3, "f3", now=0.6) == ["f3", "f4"]

    assert o.fill(rows(3, 4), upto=upto) == Filled([], [])
    assert o.last == 4


def test_a_fill_skips_only_below_a_frame_it_has() -> None:
    o = order(last=2)

    # Nothing says 5 was ever given out: it may still come.
    assert o.fill(rows(3, 4), upto=5) == Filled(["db3", "db4"], [])
    assert o.last == 4 and o.held == 0
    assert o.offer(5, "f5", now=0.0) == ["f5"]


def test_reset_drops_what_a_replay_covered_and_releases_what_follows() -> None:
    o = order(last=0)
    o.offer(3, "f3", now=0.0)
    o.offer(5, "f5", now=0.0)
    o.offer(6, "f6", now=0.0)

    assert o.reset(4) == ["f5", "f6"]
    assert o.last == 6 and o.held == 0
    assert o.deadline() is None


def test_reset_keeps_frames_still_ahead() -> None:
    o = order(last=0)
    o.offer(9, "f9", now=2.0)

    assert o.reset(5) == []
    assert o.last == 5 and o.held == 1
    assert o.hole(now=2.0 + WAIT) == (5, 9)

    fresh = order(last=0)
    assert fresh.reset(7) == [] and fresh.last == 7 and fresh.held == 0
