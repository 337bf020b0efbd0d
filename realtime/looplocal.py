"""One object per running event loop: one per server process, one per test loop."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def per_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter returning this event loop's ``factory()``, made on first use.

    Keyed weakly by the loop, so a closed test loop takes its object with it.
    """
    made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
        weakref.WeakKeyDictionary()
    )

    def get() -> T:
        loop = asyncio.get_running_loop()
        found = made.get(loop)
        if found is None:
            found = made[loop] = factory()
        return found

    return get
