"""Session codes: short, unambiguous when read aloud or typed, and hard to guess."""

from __future__ import annotations

import re
import secrets

# No 0/O, 1/I/L: nothing a person can misread. 31 symbols ** 8 = 8.5e11 codes, so
# guessing one by trying is hopeless at the join endpoint's throttled rate.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 8
_CODE_RE = re.compile(rf"^[{ALPHABET}]{{{LENGTH}}}$")


def code_generate() -> str:
    """A fresh random code (``secrets``: unpredictable, unlike ``random``)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def code_normalise(raw: str) -> str | None:
    """The canonical form of a typed code, or ``None`` if it cannot be one.

    Lookups are case-insensitive and ignore spaces and dashes people add when they
    copy a code (``abcd-efgh``).
    """
    if not isinstance(raw, str) or len(raw) > 32:
        return None
    code = raw.strip().replace("-", "").replace(" ", "").upper()
    return code if _CODE_RE.match(code) else None
