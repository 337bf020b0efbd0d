"""The users behind sockets' tokens, kept per process (``realtime.localcache``).

A JWT is self-contained (signature and expiry are checked without the database), but
the user it names must still exist and be active: the connect path reads the user
here, and only a miss costs a trip to the database thread.

Revocation: a user saved or deleted in this process (deactivated, password changed,
removed) is forgotten at once; in another process, the entry it holds lives
``REALTIME_USER_CACHE_TTL`` seconds at most (0 turns the cache off). A user changed
by a queryset ``update()``, which sends no signal, is also bounded by the TTL.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.db.models.signals import post_delete, post_save
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from realtime.conf import realtime_settings
from realtime.localcache import LocalCache

users: LocalCache[str, Any] = LocalCache(
    "users",
    ttl=lambda: realtime_settings.REALTIME_USER_CACHE_TTL,
    max_entries=lambda: realtime_settings.REALTIME_CACHE_ENTRIES,
)


def _key(user_id: Any) -> str:
    # simplejwt puts the id in its claim as a string: one key for "7" and 7.
    return str(user_id)


def cached_user(user_id: Any) -> Any | None:
    """The user whose ``USER_ID_FIELD`` is ``user_id``, if this process holds it."""
    return users.get(_key(user_id))


def load_user(user_id: Any) -> Any | None:
    """Read the user (database thread) and keep it; ``None`` if there is none."""
    generation = users.generation()
    user = _read_user(get_user_model(), jwt_settings.USER_ID_FIELD, user_id)
    if user is not None:
        users.put(_key(user_id), user, generation)
    return user


def _read_user(model: Any, field: str, user_id: Any) -> Any | None:
    """The user by one statement written once, where that reads what the ORM would.

    The ORM built the same query for every first connect (~0.4 ms of the database
    thread's time on the benchmark machine, where the statement itself is ~0.02).
    A user model with parent models, or whose manager (``objects``, as simplejwt
    reads it) has a queryset of its own, is read through the ORM as before.
    """
    manager = model.objects
    plain = (
        type(manager).get_queryset is models.Manager.get_queryset
        and manager._queryset_class is models.QuerySet
    )
    if model._meta.parents or not plain:
        return manager.filter(**{field: user_id}).first()
    column = model._meta.get_field(field)
    value = column.get_db_prep_value(user_id, connection, prepared=False)
    return next(iter(manager.raw(_user_sql(model, field), [value])), None)


@functools.cache
def _user_sql(model: Any, field: str) -> str:
    quote = connection.ops.quote_name
    return (
        f"SELECT * FROM {quote(model._meta.db_table)} "  # noqa: S608
        f"WHERE {quote(model._meta.get_field(field).column)} = %s"
    )


def _forget(sender: Any, instance: Any, **kwargs: Any) -> None:
    users.forget(_key(getattr(instance, jwt_settings.USER_ID_FIELD)))


post_save.connect(
    _forget, sender=settings.AUTH_USER_MODEL, dispatch_uid="realtime.usercache.save"
)
post_delete.connect(
    _forget, sender=settings.AUTH_USER_MODEL, dispatch_uid="realtime.usercache.delete"
)
