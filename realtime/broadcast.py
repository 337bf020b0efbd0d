"""The one door through which every endpoint sends a prepared frame to a group.

Frames are serialised once by the caller (``protocol.encode_frame``); receivers only
hand the text to their socket. Endpoints never call ``group_send`` themselves, so the
delivery mechanism can change here without touching them.
"""

from __future__ import annotations

from channels.layers import get_channel_layer

FANOUT_EVENT = "realtime.fanout"
CLOSE_EVENT = "realtime.close"


async def broadcast(
    group: str, text: str, *, exclude: str | None = None, seq: int | None = None
) -> None:
    """Send the prepared ``text`` frame to every socket in ``group``.

    ``exclude`` is the channel name of one socket that should not get it (the sender
    of a ``typing`` event, say). ``seq`` is the frame's sequence number, if it has one,
    so that a receiver can drop what it already replayed without parsing the text.
    """
    event = {"type": FANOUT_EVENT, "text": text}
    if exclude is not None:
        event["exclude"] = exclude
    if seq is not None:
        event["seq"] = seq
    await get_channel_layer().group_send(group, event)


async def close_group(group: str, code: int, *, exclude: str | None = None) -> None:
    """Close every socket in ``group`` with ``code`` (4009 replaced, 4010 closed)."""
    event = {"type": CLOSE_EVENT, "code": int(code)}
    if exclude is not None:
        event["exclude"] = exclude
    await get_channel_layer().group_send(group, event)


async def group_join(group: str, channel_name: str) -> None:
    await get_channel_layer().group_add(group, channel_name)


async def group_leave(group: str, channel_name: str) -> None:
    await get_channel_layer().group_discard(group, channel_name)
