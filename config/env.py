"""Typed readers for environment variables that fail loudly, naming the variable.

They live in ``realtime.conf``, which parses every app's knobs with them (the toolkit
imports nothing from ``config``); Django's own settings read them from here.
"""

from __future__ import annotations

from realtime.conf import env_bool, env_list, env_number, env_rates, env_str

__all__ = ["env_bool", "env_list", "env_number", "env_rates", "env_str"]
