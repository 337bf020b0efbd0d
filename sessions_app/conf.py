"""The live-session endpoint's knobs, each with its one default (``realtime.conf``)."""

from __future__ import annotations

from realtime.conf import AppSettings, Knob

sessions_settings = AppSettings(
    [
        # A long event; the socket closes 4001 after it.
        Knob(
            "SESSION_GUEST_TOKEN_TTL",
            12 * 3600,
            "int",
            minimum=60,
            doc="seconds a guest's participant token lives",
        ),
        # Cross-process reordering settles in milliseconds.
        Knob(
            "SESSION_GAP_WAIT",
            0.5,
            "float",
            minimum=0.01,
            doc="seconds a socket waits for a missing seq before reading it",
        ),
        # sessions_app/joincache.py: a join's session and participant rows, kept per
        # process; a session closed by another process admits joins here this long.
        Knob(
            "SESSION_CACHE_TTL",
            10.0,
            "float",
            minimum=0,
            doc="seconds a process keeps a join's session and participant; 0: off",
        ),
        Knob(
            "SESSION_HISTORY_PAGE_SIZE",
            100,
            "int",
            minimum=1,
            doc="messages per history page (a request may ask up to 500)",
        ),
        Knob(
            "SESSION_NOTICE_WINDOW",
            0.25,
            "float",
            doc="seconds join/leave notices of a busy room are coalesced; 0: never",
        ),
        Knob(
            "SESSION_NOTICE_COALESCE_FROM",
            100,
            "int",
            doc="people online from which a room's notices are coalesced",
        ),
        Knob(
            "SESSION_WELCOME_ONLINE_MAX",
            200,
            "int",
            minimum=1,
            doc="people a welcome's online list names at most",
        ),
        # Guest joins (sessions_app.join_limits): misses per client address ...
        Knob("SESSION_JOIN_MISS_LIMIT", 30, "int", minimum=1, doc="unknown codes"),
        Knob("SESSION_JOIN_MISS_WINDOW", 60.0, "float", minimum=1, doc="seconds"),
        # ... and joins of one known session, from any number of addresses.
        Knob("SESSION_JOIN_LIMIT", 1000, "int", minimum=1, doc="joins per session"),
        Knob("SESSION_JOIN_WINDOW", 60.0, "float", minimum=1, doc="seconds"),
        # Per connection: generous for people, a wall for scripts.
        Knob(
            "SESSION_THROTTLES",
            {
                "ping": (10, 1.0),
                "typing": (5, 1.0),
                "chat.send": (100, 10.0),
                "question.ask": (30, 10.0),
                "question.upvote": (60, 10.0),
                "participant.update": (5, 10.0),
            },
            "rates",
            doc="per-socket limits of the session endpoint's message types",
        ),
    ]
)
