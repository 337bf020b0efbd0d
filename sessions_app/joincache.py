"""The rows a socket's join reads, kept per process (``realtime.localcache``).

A join reads the session behind its code and the participant behind its credential:
during a reconnect storm the same few rows, each read a statement in the one shared
database thread. Here they are kept for ``SESSION_CACHE_TTL`` seconds:

* sessions by (code, kind), participants by (session, participant id) for a guest's
  token and by (session, user) for a signed-in user;
* a session or participant saved or deleted in this process is forgotten at once
  (model signals; a session's delete removes its participants with their signals);
  the services that change them with ``update()`` (close, reopen, rename) call
  ``forget_session`` / ``forget_participant``;
* a change made in another process is seen here after the TTL at most. A session
  closed there is still found open here that long, but a socket it admits is closed
  4010 before its welcome: the join's backlog read, after its group join, reads the
  session's row itself (a close after that read reaches it as a broadcast). 0 turns
  the caches off.

Callers get copies: a consumer may change its participant (a rename) without
changing what the next join reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from django.db.models.signals import post_delete, post_save

from realtime.conf import realtime_settings
from realtime.localcache import LocalCache
from sessions_app.conf import sessions_settings
from sessions_app.models import Participant, Session


def _ttl() -> float:
    return sessions_settings.SESSION_CACHE_TTL


def _entries() -> int:
    return realtime_settings.REALTIME_CACHE_ENTRIES


sessions: LocalCache[tuple[str, str], Session] = LocalCache(
    "sessions", ttl=_ttl, max_entries=_entries
)
participants: LocalCache[tuple[str, int, Any], Participant] = LocalCache(
    "participants", ttl=_ttl, max_entries=_entries
)


def cached(cache: LocalCache, key: Any, read: Callable[[], Any]) -> Any:
    """A copy of ``key``'s value, read by ``read()`` (database thread) on a miss and
    kept if not ``None``."""
    found = cache.get(key)
    if found is None:
        generation = cache.generation()
        found = read()
        if found is None:
            return None
        cache.put(key, found, generation)
    return copy.copy(found)


def forget_session(session_id: int) -> None:
    """The session changed without a signal (``update()``): read it afresh."""
    sessions.forget_where(lambda key, session: session.pk == session_id)


def forget_participant(participant_id: int) -> None:
    participants.forget_where(lambda key, found: found.pk == participant_id)


def _session_changed(sender: Any, instance: Session, **kwargs: Any) -> None:
    forget_session(instance.pk)


def _participant_changed(
    sender: Any, instance: Participant, created: bool = False, **kwargs: Any
) -> None:
    if not created:  # a new row cannot be kept yet: nothing to forget
        forget_participant(instance.pk)


post_save.connect(_session_changed, sender=Session, dispatch_uid="joincache.s")
post_delete.connect(_session_changed, sender=Session, dispatch_uid="joincache.sd")
post_save.connect(_participant_changed, sender=Participant, dispatch_uid="joincache.p")
post_delete.connect(
    _participant_changed, sender=Participant, dispatch_uid="joincache.pd"
)
