from django.apps import AppConfig
from django.core.signals import request_finished
from django.db import connections


def close_request_connections(**kwargs) -> None:
    """An HTTP request's database connections close when it ends.

    With SQLite, ``CONN_MAX_AGE`` is ``None`` so that the one database thread
    keeps its connection (config/settings.py). Under ASGI every HTTP request runs in
    a thread of its own, and Django's own ``close_old_connections`` would keep that
    thread's connection too, open until the garbage collector finds it (Django's
    advice: no persistent connections under ASGI). This closes them, as
    ``CONN_MAX_AGE=0`` would; sockets never send ``request_finished``.
    """
    for connection in connections.all(initialized_only=True):
        if connection.settings_dict.get("CONN_MAX_AGE") is None:
            connection.close()


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime toolkit"

    def ready(self) -> None:
        # asgiref's thread-sensitive calls outside an HTTP request (Channels'
        # database_sync_to_async, a test's sync_to_async) share the sockets' one
        # database thread, as they shared asgiref's before (realtime/dbthread.py).
        from asgiref.sync import SyncToAsync

        from realtime.dbthread import database_thread

        SyncToAsync.single_thread_executor = database_thread
        request_finished.connect(
            close_request_connections, dispatch_uid="realtime.close_request_connections"
        )
