"""Loaded with ``-p tests.testenv`` before Django starts: development settings."""

import os

os.environ.setdefault("DEBUG", "1")
for name in ("REDIS_URL", "DATABASE_URL"):  # tests opt into services explicitly
    os.environ.pop(name, None)
