"""bench.group_commit: the same posts stored alone and in batches, each timed."""

from __future__ import annotations

import pytest

from bench import group_commit
from sessions_app.models import Message


@pytest.mark.django_db(transaction=True)
def test_alone_and_batched_posts_are_all_stored_and_timed():
    results = group_commit.measure(16, [8], rounds=1)
    assert set(results) == {"alone", "batch 8"}
    assert all(ms > 0 for ms in results.values())
    seqs = sorted(Message.objects.values_list("seq", flat=True))
    assert seqs == list(range(1, 33))  # both ways gapless, one session
