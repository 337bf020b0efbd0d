"""Typed readers for environment variables that fail loudly, naming the variable.

Every app's knobs are parsed with them (``realtime.conf.from_environment``), and
Django's own settings in ``config/settings.py`` too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

Rates = dict[str, tuple[int, float]]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str) -> str:
    """The variable's value, or ``default`` when unset or empty."""
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_bool(name: str, default: bool) -> bool:
    """``1``/``0`` (also ``true``/``false``, ``yes``/``no``, ``on``/``off``)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def env_number(
    name: str, default: float, *, minimum: float = 0, integer: bool = True
) -> float:
    """A number no smaller than ``minimum``; ints unless ``integer=False``."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ImproperlyConfigured(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks dropped."""
    raw = os.environ.get(name, "")
    if raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_rates(name: str, default: Mapping[str, tuple[int, float]]) -> Rates:
    """``type=count/seconds`` pairs (``chat.send=200/10,typing=5/1``) over ``default``.

    Merged over the default, so an operator changes one type without restating all.
    """
    rates = {type_: (int(n), float(s)) for type_, (n, s) in default.items()}
    raw = os.environ.get(name, "")
    for item in raw.split(","):
        if not item.strip():
            continue
        type_, _, rate = item.partition("=")
        count, _, seconds = rate.partition("/")
        try:
            limit = (int(count), float(seconds))
        except ValueError:
            limit = (0, 0.0)
        if not type_.strip() or limit[0] < 1 or not limit[1] > 0:
            raise ImproperlyConfigured(
                f"{name} must be type=count/seconds pairs separated by commas "
                f"(count >= 1, seconds > 0; chat.send=200/10), got {item.strip()!r}"
            )
        rates[type_.strip()] = limit
    return rates
