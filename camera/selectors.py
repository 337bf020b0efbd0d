"""Reads of camera streams."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet

from camera.models import SLUG_PATTERN, Stream

_SLUG_RE = re.compile(SLUG_PATTERN)


def stream_get(*, slug: str) -> Stream | None:
    """The stream with this id, or ``None`` (also for an id that cannot exist)."""
    if not _SLUG_RE.match(slug):
        return None
    return Stream.objects.filter(slug=slug).first()


def streams_visible(*, user: Any) -> QuerySet[Stream]:
    """Every stream for a signed-in user; only public ones for anybody else."""
    streams = Stream.objects.all()
    if not getattr(user, "is_authenticated", False):
        streams = streams.filter(public=True)
    return streams


def stream_viewable(*, stream: Stream, user: Any) -> bool:
    """May ``user`` watch ``stream``: public, or a signed-in user."""
    return stream.public or bool(getattr(user, "is_authenticated", False))
