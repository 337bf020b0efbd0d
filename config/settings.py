"""Django settings, read from environment variables with embedded defaults.

Every variable is listed in docs/protocol.md §10 and docs/deployment.md. With nothing
set, the project runs on SQLite, the in-memory channel layer and the local-memory
cache; ``REDIS_URL`` and ``DATABASE_URL`` switch it to Redis and PostgreSQL.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from camera.conf import camera_settings
from config.env import env_bool, env_list, env_number, env_str
from realtime import redisconn
from realtime.conf import from_environment, realtime_settings
from realtime.copilot.conf import copilot_settings
from sessions_app.conf import sessions_settings
from sessions_app.messenger.conf import messenger_settings

BASE_DIR = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------- core
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0")
    SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105

_DEV_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", _DEV_HOSTS if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list(
    "CSRF_TRUSTED_ORIGINS",
    ["http://localhost:8000", "http://127.0.0.1:8000"] if DEBUG else [],
)

INSTALLED_APPS = [
    "daphne",  # first: its runserver replaces Django's with the ASGI one
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "realtime",
    "sessions_app",
    "camera",
]

MIDDLEWARE = [
    "realtime.logcontext.TraceMiddleware",  # first: every line of a request has it
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "realtime.metrics.MetricsPortMiddleware",  # starts METRICS_PORT, then steps aside
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------- database
# https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
# Under ASGI persistent connections are not reused across requests: keep 0.
_database_url = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=0)}
except Exception as exc:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # CONN_MAX_AGE stays 0 (Django's advice under ASGI); a pool makes the "close" after
    # each call on the database thread a return to the pool instead of a new TCP
    # connection per query (https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "pool",
        {
            "min_size": 1,
            "max_size": env_number("DATABASE_POOL_SIZE", 10, minimum=1),
            # How long a query waits for a connection (psycopg's default, 30 s): while
            # the database is unreachable each write waits this long before it fails
            # with a retryable error, holding the one database thread (deployment.md).
            "timeout": env_number(
                "DATABASE_POOL_TIMEOUT", 30.0, minimum=0.1, integer=False
            ),
        },
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend, each statement's placeholders converted once (config/sqlite).
    DATABASES["default"]["ENGINE"] = "config.sqlite"
    # Tests: Django's default for SQLite, said outright (pytest-django recognises
    # SQLite by the stock ENGINE name, and would otherwise name a file per worker).
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", ":memory:")
    # WAL + a busy timeout: the database thread and admin requests write side by side.
    # synchronous=NORMAL is SQLite's advice for WAL: a commit survives a crash of the
    # process, and no fsync per commit (FULL cost ~10 ms per chat message here).
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
    # Sockets query from the one database thread (realtime/dbthread.py): with
    # CONN_MAX_AGE=0 every
    # query batch reopened the file (and closing the last WAL connection checkpoints):
    # measured ~40% of a chat message's server time. SQLite has no server to run out
    # of connections, so the thread keeps one open.
    DATABASES["default"]["CONN_MAX_AGE"] = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------- redis
# One Redis (redis://, rediss://, unix://) or a Redis Cluster (redis+cluster:// or
# rediss+cluster://, any one node): docs/deployment.md, "Past one Redis".
REDIS_URL = env_str("REDIS_URL", "")
REDIS_CLUSTER = redisconn.is_cluster(REDIS_URL)
if REDIS_URL and not REDIS_URL.startswith(redisconn.SCHEMES):
    raise ImproperlyConfigured(
        f"REDIS_URL must start with {', '.join(redisconn.SCHEMES)}, got {REDIS_URL!r}"
    )

if REDIS_CLUSTER:
    # channels-redis cannot follow a cluster's MOVED answers. Broadcasts cross
    # processes on the hub's relay (sharded pub/sub), which needs no channel layer:
    # the layer stays in this process, and the layer fan-out path is refused.
    if env_str("REALTIME_FANOUT", "hub") == "layer":
        raise ImproperlyConfigured(
            "REALTIME_FANOUT=layer needs channels-redis, which cannot use a Redis "
            "Cluster: use the hub (the default) with a redis+cluster:// REDIS_URL"
        )
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "realtime.clustercache.RedisClusterCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "rt"),
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "capacity": 1000,
                "expiry": 60,
                # channels-redis forgets a group member after this; sockets re-join
                # every REALTIME_GROUP_REFRESH seconds, which must stay below it.
                "group_expiry": env_number("CHANNEL_GROUP_EXPIRY", 86400, minimum=2),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "rt"),
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# ---------------------------------------------------------------------------- auth
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Services raise realtime.errors' domain errors; this is where REST states them.
    "EXCEPTION_HANDLER": "realtime.drf.exception_handler",
    # Throttles key on REMOTE_ADDR; with NUM_PROXIES unset DRF would trust a client's
    # own X-Forwarded-For and anyone could reset their bucket. Behind one proxy: 1.
    "NUM_PROXIES": env_number("NUM_PROXIES", 0, minimum=0),
    "DEFAULT_THROTTLE_RATES": {
        "ticket": env_str("TICKET_RATE", "60/min"),
    },
}

# https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html
# CHECK_REVOKE_TOKEN: a password change revokes every token issued before it.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_number("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_number("JWT_REFRESH_DAYS", 1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "CHECK_REVOKE_TOKEN": True,
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Django Realtime API",
    "DESCRIPTION": "REST side of the realtime server; the socket protocol is in "
    "docs/protocol.md.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGIN_URL = "/accounts/login/"  # any user; the admin's form takes staff only
LOGIN_REDIRECT_URL = "/"

# ---------------------------------------------------------------------------- realtime
# Each app declares its knobs and their defaults once, in its conf.py, and reads them
# where used (realtime.conf), so tests can override them with the settings fixture.
globals().update(
    from_environment(
        realtime_settings,
        sessions_settings,
        messenger_settings,
        camera_settings,
        copilot_settings,
    )
)

# ---------------------------------------------------------------------------- i18n
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------- static
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Served by WhiteNoise from daphne itself; finders in development so `make run`
# needs no collectstatic (https://whitenoise.readthedocs.io/en/stable/django.html).
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", True)
# Before collectstatic has run the folder is absent; the finders serve everything.
warnings.filterwarnings("ignore", message="No directory at")

# ---------------------------------------------------------------------------- logging
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# json: one object per line with trace_id, user_id, endpoint (docs/operations.md,
# *Logs*), for a log pipeline; plain: readable lines, for development.
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "realtime.logcontext.ContextFilter"},
        "redact": {"()": "realtime.logfilters.RedactSecretsFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "realtime.logfilters.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
            },
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
    },
}
