"""The toolkit's clock seam: real readings by default, a manual clock when installed."""

from __future__ import annotations

import time

import pytest

from realtime import clock
from realtime.clock import ManualClock


def test_readings_are_the_real_clocks_by_default():
    before_wall, before_mono = time.time(), time.monotonic()
    wall, mono = clock.now(), clock.monotonic()
    assert before_wall <= wall <= time.time()
    assert before_mono <= mono <= time.monotonic()


def test_a_manual_clock_moves_only_when_told_and_both_readings_together():
    fake = ManualClock(now=1_000.0, monotonic=5.0)
    assert (fake.now(), fake.monotonic()) == (1_000.0, 5.0)
    fake.advance(2.5)
    assert (fake.now(), fake.monotonic()) == (1_002.5, 7.5)
    fake.advance(0)
    assert (fake.now(), fake.monotonic()) == (1_002.5, 7.5)


def test_a_manual_clock_never_goes_back():
    fake = ManualClock()
    with pytest.raises(ValueError, match="cannot go back"):
        fake.advance(-1)
    assert fake.now() == ManualClock().now()


def test_installed_clock_is_read_inside_the_block_only():
    fake = ManualClock(now=42.0, monotonic=7.0)
    with clock.installed(fake) as active:
        assert active is fake
        assert (clock.now(), clock.monotonic()) == (42.0, 7.0)
        fake.advance(1)
        assert (clock.now(), clock.monotonic()) == (43.0, 8.0)
    assert clock.now() > 1_600_000_000  # the real wall clock again
    assert clock.monotonic() != 8.0


def test_installs_nest_and_unwind_even_on_errors():
    outer, inner = ManualClock(now=1.0), ManualClock(now=2.0)
    with clock.installed(outer):
        with pytest.raises(RuntimeError), clock.installed(inner):
            assert clock.now() == 2.0
            raise RuntimeError("a failing test")
        assert clock.now() == 1.0
    assert clock.now() > 1_600_000_000


def test_fake_clock_fixture_is_installed(fake_clock):
    assert isinstance(fake_clock, ManualClock)
    start = clock.monotonic()
    fake_clock.advance(30)
    assert clock.monotonic() - start == 30
    assert clock.now() == fake_clock.now()
