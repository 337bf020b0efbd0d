"""Writes to camera streams."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from camera.models import Stream, new_publish_token


def stream_configure(*, slug: str, changes: dict[str, Any]) -> tuple[Stream, bool]:
    """The stream ``slug``, created if missing, with ``changes`` applied and saved.

    This is how ``runcamera``'s flags override the row. Raises Django's
    ``ValidationError`` (naming the field) for values the row cannot hold.
    """
    with transaction.atomic():
        stream = Stream.objects.select_for_update().filter(slug=slug).first()
        created = stream is None
        if created:
            stream = Stream(slug=slug)
        for field, value in changes.items():
            setattr(stream, field, value)
        stream.full_clean()  # a row edited behind the admin's back is caught here too
        if created or changes:
            stream.save()
    return stream, created


def stream_token_regenerate(*, stream: Stream) -> str:
    """A new publish token; the worker must be restarted with it."""
    stream.publish_token = new_publish_token()
    stream.save(update_fields=["publish_token", "updated_at"])
    return stream.publish_token
