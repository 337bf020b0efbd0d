"""Typed readers for environment variables that fail loudly, naming the variable.

They live in ``realtime.env``, which parses every app's knobs too (the toolkit imports
nothing from ``config``); Django's own settings read them from here.
"""

from __future__ import annotations

from realtime.env import env_bool, env_list, env_number, env_rates, env_str

__all__ = ["env_bool", "env_list", "env_number", "env_rates", "env_str"]
