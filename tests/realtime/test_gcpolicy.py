"""Startup objects frozen out of the collector's full passes (REALTIME_GC_FREEZE)."""

from __future__ import annotations

import gc

import pytest

from realtime.gcpolicy import freeze_startup_objects


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_what_lives_at_startup_is_frozen_and_left_out_of_collections(
    unfrozen, loaded_while_unfrozen
):
    kept = [[] for _ in range(1000)]  # containers: the collector tracks them
    assert gc.get_freeze_count() == 0
    frozen = freeze_startup_objects()
    # A frozen object that dies leaves the permanent generation, and another
    # test's leftover thread may free some meanwhile: the count can only drop.
    assert len(kept) <= gc.get_freeze_count() <= frozen
    # The collector's generations no longer hold them (the permanent one does).
    scanned = {id(x) for x in gc.get_objects()}
    assert not any(id(x) in scanned for x in kept)
    assert loaded_while_unfrozen == [True]


@pytest.fixture
def loaded_while_unfrozen(monkeypatch):
    """The URLconf (views, DRF, the admin), which Django imports on the first
    request, is loaded before the freeze: a resolver that records when."""
    import realtime.gcpolicy

    seen: list[bool] = []

    class Resolver:
        @property
        def url_patterns(self):
            seen.append(gc.get_freeze_count() == 0)
            return []

    monkeypatch.setattr(realtime.gcpolicy, "get_resolver", Resolver)
    return seen


def test_the_knob_turns_it_off(unfrozen, settings):
    settings.REALTIME_GC_FREEZE = False
    assert freeze_startup_objects() == 0 == gc.get_freeze_count()
