"""The copilot endpoint's knobs, each with its one default (``realtime.conf``)."""

from __future__ import annotations

from realtime.conf import AppSettings, Knob

copilot_settings = AppSettings(
    [
        # The query budget (realtime.copilot.limits); queries are the costly message.
        Knob(
            "COPILOT_RATE_LIMIT",
            10,
            "int",
            minimum=1,
            doc="queries per COPILOT_RATE_WINDOW",
        ),
        Knob(
            "COPILOT_RATE_WINDOW",
            60.0,
            "float",
            minimum=1,
            doc="seconds over which COPILOT_RATE_LIMIT counts",
        ),
        Knob(
            "SHARE_RATE_LIMIT",
            True,
            "bool",
            doc="one budget per user across sockets and processes; off: per socket",
        ),
        Knob(
            "COPILOT_MAX_IN_FLIGHT",
            10,
            "int",
            minimum=1,
            doc="queries one socket may have running at once",
        ),
        # A new copilot socket closes the user's older ones with 4009.
        Knob(
            "SINGLE_SESSION_PER_USER",
            False,
            "bool",
            doc="one copilot socket per user",
        ),
        Knob(
            "COPILOT_AGENT",
            "realtime.copilot.agents.ReferenceAgent",
            doc="dotted path of the Agent subclass that answers",
        ),
        Knob(
            "COPILOT_LLM_URL",
            "",
            doc="chat-completions endpoint or base URL (llm.ChatCompletionsAgent)",
        ),
        Knob("COPILOT_LLM_MODEL", "", doc="sent as model when set"),
        Knob("COPILOT_LLM_API_KEY", "", doc="sent as a Bearer token when set"),
        Knob(
            "COPILOT_LLM_TIMEOUT",
            60.0,
            "float",
            minimum=1,
            doc="seconds to connect and between streamed chunks",
        ),
        # The "reconnect within 2 minutes and resume".
        Knob(
            "COPILOT_RESUME_TTL",
            120.0,
            "float",
            minimum=1,
            doc="seconds an answer stays resumable after its last delta",
        ),
        Knob(
            "COPILOT_QUERY_TIMEOUT",
            300.0,
            "float",
            minimum=1,
            doc="seconds a query may run, attached or detached",
        ),
        # Past 1 the client may catch up after a stall, never stream faster for long.
        Knob(
            "COPILOT_AUDIO_MAX_SPEED",
            1.5,
            "float",
            minimum=1,
            doc="audio accepted at most this many times real time",
        ),
        Knob(
            "COPILOT_AUDIO_BURST_SECONDS",
            2.0,
            "float",
            doc="seconds of audio a client may send ahead of real time",
        ),
        Knob(
            "COPILOT_AUDIO_QUEUE_CHUNKS",
            64,
            "int",
            minimum=1,
            doc="frames queued for the speech hook, then refused",
        ),
    ]
)
