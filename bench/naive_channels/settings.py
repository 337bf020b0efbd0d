"""Settings of the naive Channels project: no database, in-memory channel layer."""

SECRET_KEY = "bench-naive-channels-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.naive_channels.urls"
DATABASES: dict = {}
USE_TZ = True
ASGI_APPLICATION = "bench.naive_channels.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "WARNING"},
}
