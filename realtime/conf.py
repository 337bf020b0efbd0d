"""Knobs: each app's settings, their one default, read at use and from the environment.

An app declares its knobs once, in its own ``conf.py``, and reads them through its
settings object, DRF's ``api_settings`` idiom::

    # myapp/conf.py
    from realtime.conf import AppSettings, Knob

    myapp_settings = AppSettings(
        [
            Knob("MYAPP_TIMEOUT", 10.0, "float", minimum=0.1, doc="seconds to wait"),
            Knob("MYAPP_THROTTLES", {"myapp.ask": (5, 1.0)}, "rates", doc="per socket"),
        ]
    )

    # anywhere in myapp
    myapp_settings.MYAPP_TIMEOUT  # Django's settings.MYAPP_TIMEOUT, else 10.0

A value is read from ``django.conf.settings`` at use and kept until a setting changes
(``setting_changed``, as DRF's ``api_settings`` reloads), so pytest-django's
``settings`` fixture overrides it.
``config/settings.py`` fills Django's settings from the environment with
``from_environment(myapp_settings, ...)``: each knob's environment variable of the same
name, parsed by its kind, or its default. ``get(name)`` reads any registered knob by
name (the toolkit's consumer reads an endpoint's throttle knob that way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from realtime.env import env_bool, env_list, env_number, env_rates, env_str

Kind = Literal["str", "bool", "int", "float", "list", "rates"]
KINDS: frozenset[str] = frozenset({"str", "bool", "int", "float", "list", "rates"})
# A default may depend on other knobs: a callable given a reader (name → value).
Reader = Callable[[str], Any]

_UNSET = object()


# ---------------------------------------------------------------------------- knobs
@dataclass(frozen=True)
class Knob:
    """One setting: its name (also its environment variable), default, kind and doc.

    ``kind`` is how the environment variable is parsed (and how a value read at use is
    cast): ``str``, ``bool``, ``int``, ``float``, ``list`` (comma-separated) or
    ``rates`` (``{type: (count, seconds)}``, from ``type=count/seconds,...`` merged
    over the default). ``minimum`` bounds ``int``/``float`` values from the
    environment; ``choices``, if given, the values of a ``str``. ``default`` may be a
    callable given a reader of other knobs (``lambda read: 15 if read("X") else 60``):
    the environment's values in ``from_environment``, Django's settings at use.
    Defaults are shared: treat a ``list`` or ``rates`` value as read-only.
    """

    name: str
    default: Any
    kind: Kind = "str"
    minimum: float = 0
    doc: str = ""
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")

    def default_value(self, read: Reader) -> Any:
        """The default, computed from other knobs through ``read`` if callable."""
        return self.default(read) if callable(self.default) else self.default

    def cast(self, value: Any) -> Any:
        """A value read from Django's settings, as its kind (tests may set ``"5"``)."""
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        if self.kind == "bool":
            return bool(value)
        return value

    def from_environment(self, read: Reader) -> Any:
        """The environment variable parsed by kind, or the default; bad values raise
        ``ImproperlyConfigured`` naming the variable."""
        name, default = self.name, self.default_value(read)
        if self.kind == "bool":
            return env_bool(name, default)
        if self.kind in ("int", "float"):
            integer = self.kind == "int"
            return env_number(name, default, minimum=self.minimum, integer=integer)
        if self.kind == "list":
            return env_list(name, default)
        if self.kind == "rates":
            return env_rates(name, default)
        value = env_str(name, default)
        if self.choices and value not in self.choices:
            allowed = ", ".join(self.choices)
            raise ImproperlyConfigured(
                f"{name} must be one of {allowed}, got {value!r}"
            )
        return value


# Every knob of every app, by name: get() and the readers of callable defaults use it.
_registry: dict[str, Knob] = {}


def _register(knob: Knob) -> None:
    known = _registry.setdefault(knob.name, knob)
    if known is not knob and known != knob:
        raise ValueError(f"knob {knob.name} is declared twice")


# Values read, kept until a setting changes: several knobs are read on every client
# frame, and a lookup, a getattr on Django's lazy settings and a cast each time were
# measurable there. Django signals every change made through ``override_settings``
# (the ``settings`` fixture) with ``setting_changed``: the whole cache goes then, as
# DRF's ``api_settings`` does; code that assigns to ``settings`` itself calls
# ``reload()``.
# ``override_settings`` (and so the fixture, ``del`` included) swaps the object behind
# ``settings``: a read under another one starts afresh.
_cache: dict[str, Any] = {}
_cached_under: list[Any] = [None]


def _read_setting(name: str) -> Any:
    wrapped = settings._wrapped
    if wrapped is not _cached_under[0]:
        _cache.clear()
        _cached_under[0] = wrapped
    try:
        return _cache[name]
    except KeyError:
        pass
    try:
        knob = _registry[name]
    except KeyError:
        raise KeyError(f"no knob named {name!r} is registered") from None
    value = getattr(settings, name, _UNSET)
    value = knob.default_value(_read_setting) if value is _UNSET else knob.cast(value)
    _cache[name] = value
    return value


def reload(**_: Any) -> None:
    """Forget the values read: the next reads see Django's settings as they are."""
    _cache.clear()


setting_changed.connect(reload)


def knobs() -> list[Knob]:
    """Every knob declared so far, of every app (operators' tools, the bench)."""
    return list(_registry.values())


def get(name: str) -> Any:
    """The value of any app's knob ``name``, read now; KeyError if none is declared."""
    return _read_setting(name)


class AppSettings:
    """An app's knobs as attributes, each read from Django's settings at use.

    ``app_settings.NAME`` is ``getattr(django.conf.settings, NAME, default)`` cast to
    the knob's kind, kept until a setting changes (so the ``settings`` fixture
    overrides it); a name the app did not declare raises AttributeError. Declaring
    registers the knobs for ``get()``; a name may belong to one app only.
    ``after_environment``, if given, is applied by ``from_environment`` to the values
    read, for rules between knobs (the toolkit's quick heartbeat).
    """

    def __init__(
        self,
        knobs: Iterable[Knob],
        *,
        after_environment: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.knobs: dict[str, Knob] = {knob.name: knob for knob in knobs}
        self.after_environment = after_environment
        for knob in self.knobs.values():
            _register(knob)

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not real attributes: the knobs.
        if name not in self.__dict__.get("knobs", {}):
            raise AttributeError(f"no knob named {name!r} in this app's settings")
        return _read_setting(name)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.knobs]


def from_environment(*app_settings: AppSettings) -> dict[str, Any]:
    """Every knob of these apps from its environment variable, for ``settings.py``.

    Each variable is parsed by its knob's kind (bad values raise
    ``ImproperlyConfigured`` naming it); an unset or empty one gives the default.
    """
    values: dict[str, Any] = {}

    def read(name: str) -> Any:
        if name not in values:
            values[name] = _registry[name].from_environment(read)
        return values[name]

    for app in app_settings:
        for name in app.knobs:
            read(name)
        if app.after_environment is not None:
            app.after_environment(values)
    wanted = {name for app in app_settings for name in app.knobs}
    return {name: value for name, value in values.items() if name in wanted}


# ------------------------------------------------------------------ the toolkit's knobs
def _quick(read: Reader) -> bool:
    return bool(read("HEARTBEAT_QUICK"))


def _quick_heartbeat(values: dict[str, Any]) -> None:
    # docs/protocol.md §10: quick mode overrides the two heartbeat times outright.
    if values["HEARTBEAT_QUICK"]:
        values["HEARTBEAT_INTERVAL"], values["PONG_TIMEOUT"] = 5, 3


realtime_settings = AppSettings(
    [
        Knob(
            "HEARTBEAT_QUICK",
            False,
            "bool",
            doc="5 s heartbeat interval and 3 s pong timeout (a 15 s presence TTL)",
        ),
        Knob(
            "HEARTBEAT_INTERVAL",
            lambda read: 5 if _quick(read) else 30,
            "float",
            minimum=0.05,
            doc="seconds between the server's pings",
        ),
        Knob(
            "PONG_TIMEOUT",
            lambda read: 3 if _quick(read) else 10,
            "float",
            minimum=0.05,
            doc="seconds a client has to answer a ping",
        ),
        Knob("MAX_MISSED_PONGS", 3, "int", minimum=1, doc="missed pings, then 4003"),
        # realtime/heartbeat.py: one timer per process, the beats of a tick together.
        Knob("HEARTBEAT_TICK", 1.0, "float", minimum=0.01, doc="wheel step, s"),
        Knob(
            "PRESENCE_TTL",
            lambda read: 15 if _quick(read) else 60,
            "float",
            minimum=1,
            doc="seconds a connection stays present without a heartbeat refresh",
        ),
        Knob("REALTIME_MAX_TEXT_BYTES", 65536, "int", minimum=64, doc="text frame"),
        Knob(
            "REALTIME_MAX_VIOLATIONS",
            20,
            "int",
            minimum=1,
            doc="violations per REALTIME_VIOLATION_WINDOW, then 4029",
        ),
        Knob("REALTIME_MAX_CONNECTIONS", 10000, "int", minimum=1, doc="then 4013"),
        # realtime/gcpolicy.py: startup objects out of the collector's full passes.
        Knob("REALTIME_GC_FREEZE", True, "bool", doc="gc.freeze() once started"),
        Knob("REALTIME_MAX_TASKS", 32, "int", minimum=1, doc="waiting handlers"),
        # realtime/dbthread.py: one call running longer fails /readyz (a stuck thread).
        Knob("REALTIME_DB_CALL_STUCK", 10.0, "float", minimum=0.01, doc="s; /readyz"),
        # Frames built once per process and written straight to the server's sockets
        # (realtime/direct.py); off sends every frame through ASGI's websocket.send.
        Knob("REALTIME_DIRECT_WRITES", True, "bool", doc="prepared frames"),
        Knob("REALTIME_DIRECT_READS", True, "bool", doc="frames read past autobahn"),
        # A client that is behind gets its broadcasts queued up to this, then 4012.
        Knob(
            "REALTIME_MAX_QUEUED_BYTES",
            4 * 1024 * 1024,
            "int",
            minimum=65536,
            doc="bytes queued for a slow client, then 4012",
        ),
        Knob(
            "REALTIME_FANOUT",
            "hub",
            choices=("hub", "layer"),
            doc="hub: the per-process hub; layer: Channels' group_send, to compare",
        ),
        Knob(
            "REALTIME_VIOLATION_WINDOW",
            60.0,
            "float",
            minimum=1,
            doc="seconds over which protocol violations are counted (protocol §2)",
        ),
        # channels-redis forgets group members after a day: rejoin well before.
        Knob(
            "REALTIME_GROUP_REFRESH",
            3600.0,
            "float",
            minimum=1,
            doc="seconds between a connection's group re-joins",
        ),
        Knob(
            "REALTIME_CLOSE_WAIT",
            5.0,
            "float",
            minimum=0.1,
            doc="seconds a client has to take a close frame before it is cut off",
        ),
        # SIGTERM (realtime.drain): closes 4012 are spread over the window so that
        # clients do not all reconnect to the other processes in the same instant.
        Knob(
            "DRAIN_WINDOW",
            10.0,
            "float",
            minimum=0,
            doc="seconds over which a stopping process closes its sockets (4012)",
        ),
        Knob(
            "DRAIN_DEADLINE",
            20.0,
            "float",
            minimum=0,
            doc="seconds from SIGTERM to exit, at least the window (handlers finish)",
        ),
        Knob(
            "LIVE_REPORT_INTERVAL",
            5.0,
            "float",
            minimum=0.1,
            doc="seconds between a process's reports to the operators' live view",
        ),
        Knob("TICKET_TTL", 30, "int", minimum=1, doc="seconds a socket ticket lives"),
        # realtime/usercache.py: a JWT connect reads its user from the process's
        # cache; a change made in another process is seen after this at most.
        Knob(
            "REALTIME_USER_CACHE_TTL",
            30.0,
            "float",
            minimum=0,
            doc="seconds a process keeps a token's user (the revocation bound); 0: off",
        ),
        Knob(
            "REALTIME_CACHE_ENTRIES",
            10000,
            "int",
            minimum=1,
            doc="entries each per-process cache of users, sessions... keeps at most",
        ),
        # realtime/redisconn.py: the event loop's one Redis pool per process (on a
        # cluster the size bounds the calls in flight); a call past a timeout fails.
        Knob("REDIS_POOL_SIZE", 64, "int", minimum=1, doc="async Redis connections"),
        Knob("REDIS_POOL_TIMEOUT", 1.0, "float", minimum=0.01, doc="s to get one"),
        Knob("REDIS_SOCKET_TIMEOUT", 2.0, "float", minimum=0.01, doc="s for a reply"),
        # Prometheus scrapes each process (docs/operations.md): a second port keeps
        # /metrics off the public one; each process on a machine needs its own.
        Knob(
            "METRICS_PORT",
            0,
            "int",
            minimum=0,
            doc="port of this process's own metrics server; 0: none (only /metrics)",
        ),
        Knob("METRICS_ADDR", "127.0.0.1", doc="address METRICS_PORT listens on"),
        Knob(
            "CALLBACK_TIMEOUT",
            10.0,
            "float",
            minimum=0.01,
            doc="seconds a server-to-client call waits for its reply",
        ),
        # auth.refresh costs a trip to the shared database thread: a few a minute do.
        Knob(
            "REALTIME_THROTTLES",
            {"ping": (10, 1.0), "auth.refresh": (3, 10.0)},
            "rates",
            doc="per-socket limits of the toolkit's own message types",
        ),
        Knob(
            "ECHO_THROTTLES",
            {"echo.ask": (5, 1.0), "echo.broadcast": (10, 1.0)},
            "rates",
            doc="per-socket limits of the echo endpoint",
        ),
    ],
    after_environment=_quick_heartbeat,
)
