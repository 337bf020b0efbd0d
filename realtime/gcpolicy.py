"""The garbage collector's share of a busy process: startup objects frozen.

CPython's full (generation 2) collection walks every container object the process
holds. After Django, DRF, Channels, Twisted or uvicorn and the project are imported,
that is a few hundred thousand objects that live as long as the process and are
never garbage; during a reconnect storm, full collections came every second or two
and each held the event loop for 260-360 ms (measured with ``gc.callbacks`` in the
fault suite's 1,000-client storm), which is what ``/healthz`` waited for at its
worst. ``gc.freeze()`` moves everything alive at startup to a permanent generation
that collections skip; the same storm's full collections then took 80-270 ms, and
with the listen backlog raised too (``manage.py serve --backlog``) ``/healthz``
answered in 0.33-0.44 s at the peak against 0.74-0.87 s without the freeze (three
storms each, alternated).

The URLconf is loaded first: Django imports it, and with it the views, DRF and the
admin, on the first request, which would otherwise leave them out.
"""

from __future__ import annotations

import gc

from django.urls import get_resolver

from realtime import conf


def freeze_startup_objects() -> int:
    """Collect once, then freeze what is left (``REALTIME_GC_FREEZE``, on by
    default); the number of objects now frozen."""
    if not conf.get("REALTIME_GC_FREEZE"):
        return gc.get_freeze_count()
    get_resolver().url_patterns  # noqa: B018  (imports the URLconf, as a request would)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
