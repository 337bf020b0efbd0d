"""The one door through which every endpoint sends a prepared frame to a group.

Frames are serialised once by the caller (``protocol.encode_frame``); receivers only
hand the text to their socket. Endpoints never call ``group_send`` themselves, so the
delivery mechanism can change here without touching them: by default the per-process
hub (``realtime.hub``); with ``REALTIME_FANOUT=layer`` the plain channel-layer path,
kept so that tests and benchmarks can compare the two.

Processes without sockets (the camera worker) publish through this same door: with
Redis their hub relays each event once to every server process.
"""

from __future__ import annotations

from typing import Any

from channels.layers import get_channel_layer

from realtime import metrics
from realtime.hub import Member, fanout_mode, get_hub

FANOUT_EVENT = "realtime.fanout"
CLOSE_EVENT = "realtime.close"


async def _publish(group: str, event: dict[str, Any]) -> None:
    if fanout_mode() == "layer":
        await get_channel_layer().group_send(group, event)
    else:
        await get_hub().publish(group, event)


async def broadcast(
    group: str, text: str, *, exclude: str | None = None, seq: int | None = None
) -> None:
    """Send the prepared ``text`` frame to every socket in ``group``.

    ``exclude`` is the channel name of one socket that should not get it (the sender
    of a ``typing`` event, say). ``seq`` is the frame's number in the group's stream
    of stored frames, if it has one: a socket that orders the stream
    (``EnvelopeConsumer.order_stream``) delivers it in seq order, once, without
    parsing the text.
    """
    # ``group``: a socket that left it while the frame waited in its queue (a
    # member removed) does not get it.
    event: dict[str, Any] = {"type": FANOUT_EVENT, "text": text, "group": group}
    if exclude is not None:
        event["exclude"] = exclude
    if seq is not None:
        event["seq"] = seq
        event["stream"] = group
    metrics.broadcast_published(metrics.frame_type(text))
    await _publish(group, event)


async def close_group(group: str, code: int, *, exclude: str | None = None) -> None:
    """Close every socket in ``group`` with ``code`` (4009 replaced, 4010 closed)."""
    event: dict[str, Any] = {"type": CLOSE_EVENT, "code": int(code)}
    if exclude is not None:
        event["exclude"] = exclude
    metrics.broadcast_published(CLOSE_EVENT)
    await _publish(group, event)


async def publish_event(group: str, event: dict[str, Any]) -> None:
    """Send a typed event (``{"type": "stream.frame", ...}``) to a group's consumers.

    For endpoints that treat each receiver differently (camera flow control): every
    consumer in ``group`` gets the same dict in the handler its ``events`` table names
    for the type (``stream.frame`` → ``event_stream_frame``). Types are internal
    names, never ``websocket.*``; receivers must not mutate the event.
    """
    if event["type"].startswith("websocket."):
        raise ValueError("websocket.* events are not group events")
    metrics.broadcast_published(event["type"])
    await _publish(group, event)


async def group_join(group: str, member: Member) -> None:
    await get_hub().join(group, member)
    if fanout_mode() == "layer":  # the hub does not read layer membership
        await get_channel_layer().group_add(group, member.channel_name)


async def group_leave(group: str, member: Member) -> None:
    await get_hub().leave(group, member)
    if fanout_mode() == "layer":
        await get_channel_layer().group_discard(group, member.channel_name)
