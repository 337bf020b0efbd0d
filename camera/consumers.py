"""Camera sockets: viewers (``/ws/streams/<id>/``) and the ingest socket of workers.

Frames reach viewers as shared group events (``camera.events``) from the hub, or
from the channel layer's dispatch; each viewer only decides, through its
``ViewerFlow``, whether to hand the prepared header and JPEG to its socket now,
keep the event as its pending frame, or drop it. Nothing here is per-viewer work
beyond that decision and two socket writes.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from camera.conf import camera_settings
from camera.events import (
    FRAME_EVENT,
    POSES_EVENT,
    frame_event,
    jpeg_problem,
    poses_event,
)
from camera.flow import ViewerFlow
from camera.live import LiveRecorder
from camera.metrics import flow_meters
from camera.schemas import (
    Ack,
    FrameHeader,
    PosesPayload,
    PublishReady,
    StreamInfo,
    StreamSubscribed,
    Subscribe,
)
from camera.selectors import stream_get
from realtime.broadcast import publish_event
from realtime.conf import realtime_settings
from realtime.consumers import CloseConnection, EnvelopeConsumer
from realtime.dbthread import to_database_thread
from realtime.groups import stream_group
from realtime.protocol import ClientEnvelope, CloseCode, InvalidMessage

# Every process's current publisher of each stream: a reconnecting worker replaces
# its half-dead predecessor (4009) instead of interleaving two sequences of frames.
_publishers: dict[str, IngestConsumer] = {}


def _stream_id(scope: dict) -> str:
    return str(scope["url_route"]["kwargs"]["stream_id"])


class ViewerConsumer(EnvelopeConsumer):
    """A viewer: ``stream.info``, then what it subscribes to, flow-controlled."""

    endpoint = "streams"
    auth_required = False  # per stream: see on_connect
    messages = {"stream.subscribe": Subscribe, "frame.ack": Ack}
    # ``frame`` is followed by its JPEG as one binary frame.
    sends = {
        "stream.info": StreamInfo,
        "stream.subscribed": StreamSubscribed,
        "frame": FrameHeader,
        "poses": PosesPayload,
    }
    events = frozenset({FRAME_EVENT, POSES_EVENT})  # from the worker, per stream
    throttle_setting = "STREAM_THROTTLES"  # camera.conf: ping, stream.subscribe

    async def on_connect(self) -> None:
        stream = await to_database_thread(stream_get)(slug=_stream_id(self.scope))
        if stream is None:
            raise CloseConnection(CloseCode.NOT_FOUND)
        if not stream.public:
            if self.auth.status == "missing":
                raise CloseConnection(CloseCode.NO_CREDENTIAL)
            if not getattr(self.user, "is_authenticated", False):
                raise CloseConnection(CloseCode.FORBIDDEN)  # a guest's scoped token
        self.stream = stream
        self.flow: ViewerFlow[dict[str, Any]] = ViewerFlow(
            max_in_flight=camera_settings.STREAM_MAX_IN_FLIGHT,
            ack_timeout=camera_settings.STREAM_ACK_TIMEOUT,
        )
        self.ack_timer: asyncio.TimerHandle | None = None
        self._frame_pair = asyncio.Lock()  # a header and its JPEG go out together
        self.group = stream_group(stream.slug)
        await self.send_frame("stream.info", stream.info_payload())
        await self.join_group(self.group)
        await self.enter_room(self.group)

    async def on_disconnect(self, code: int | None) -> None:
        timer = getattr(self, "ack_timer", None)
        if timer is not None:
            timer.cancel()

    # ------------------------------------------------------------ client messages
    async def on_stream_subscribe(
        self, payload: Subscribe, envelope: ClientEnvelope
    ) -> None:
        kinds = list(dict.fromkeys(payload.kinds))
        unknown = [kind for kind in kinds if kind not in self.stream.kinds]
        if unknown:
            offered = ", ".join(self.stream.kinds)
            raise InvalidMessage(
                f"payload.kinds: {unknown[0]!r} is not a kind of this stream "
                f"({offered})"
            )
        self.flow.subscribe(kinds, poses=payload.poses, max_fps=payload.max_fps)
        await self.reply(
            envelope,
            "stream.subscribed",
            {"kinds": kinds, "poses": payload.poses, "max_fps": payload.max_fps},
        )

    async def on_frame_ack(self, payload: Ack, envelope: ClientEnvelope) -> None:
        for event in self.flow.ack(payload.seq, payload.kind, self._now()):
            flow_meters(event["kind"])[0].inc()
            await self._send_frame(event)

    # ------------------------------------------------------------ group events
    async def event_stream_frame(self, event: dict[str, Any]) -> None:
        if self.closing:
            return
        flow, kind = self.flow, event["kind"]
        replaced, skipped = flow.replaced, flow.skipped
        if flow.offer(kind, event["seq"], event, self._now()):
            flow_meters(kind)[0].inc()
            await self._send_frame(event)
        elif flow.replaced != replaced:
            flow_meters(kind)[1].inc()
        elif flow.skipped != skipped:
            flow_meters(kind)[2].inc()

    async def event_stream_poses(self, event: dict[str, Any]) -> None:
        if not self.closing and self.flow.wants_poses(event["seq"], self._now()):
            await self.send_text(event["text"])

    # ------------------------------------------------------------ internals
    async def _send_frame(self, event: dict[str, Any]) -> None:
        # The flow marked it in flight already. A send may wait (uvicorn, a client
        # behind) while an ack releases the next frame from the receive loop: the
        # lock keeps every header right before its own JPEG.
        async with self._frame_pair:
            await self.send_text(event["header"])
            await self.send_bytes(event["jpeg"])
        self._arm_ack_timer()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _arm_ack_timer(self) -> None:
        # One timer per viewer, re-armed when it fires: acks only move the deadline.
        deadline = self.flow.deadline()
        if self.ack_timer is None and deadline is not None and not self.closing:
            self.ack_timer = asyncio.get_running_loop().call_at(
                deadline, self._check_acks
            )

    def _check_acks(self) -> None:
        self.ack_timer = None
        if self.closing:
            return
        if self.flow.expired(self._now()):
            self.spawn(self.close_with(CloseCode.HEARTBEAT_TIMEOUT))
        else:
            self._arm_ack_timer()


class IngestConsumer(EnvelopeConsumer):
    """``/ws/streams/<id>/publish/``: a worker's frames and poses, fanned out once.

    The credential is the stream's publish token (``Authorization: Bearer`` or
    ``?token=``), not a user's: each ``frame`` header is followed by its JPEG as one
    binary frame; a JPEG that is empty, truncated, not a JPEG or of another size
    than announced is answered with ``INVALID_MESSAGE`` and not fanned out.
    """

    endpoint = "streams_publish"
    auth_required = False  # the publish token is checked in on_connect
    accepts_binary = True
    messages = {"frame": FrameHeader, "poses": PosesPayload}
    sends = {"publish.ready": PublishReady}

    async def on_connect(self) -> None:
        stream = await to_database_thread(stream_get)(slug=_stream_id(self.scope))
        if stream is None:
            raise CloseConnection(CloseCode.NOT_FOUND)
        credential = self.scope.get("credential")  # routing.py: its own credential
        if credential is None or credential[0] not in ("bearer", "token"):
            raise CloseConnection(CloseCode.NO_CREDENTIAL)
        if not secrets.compare_digest(
            credential[1].encode(), stream.publish_token.encode()
        ):
            raise CloseConnection(CloseCode.INVALID_CREDENTIAL)
        self.stream = stream
        self.group = stream_group(stream.slug)
        self.header: FrameHeader | None = None
        self.max_bytes = camera_settings.CAMERA_MAX_FRAME_BYTES
        self.recorder = LiveRecorder(stream.slug)
        older = _publishers.get(stream.slug)
        _publishers[stream.slug] = self
        if older is not None:
            await older.close_with(CloseCode.REPLACED)
        await self.send_frame(
            "publish.ready",
            {
                "stream_id": stream.slug,
                "kinds": list(stream.kinds),
                "max_frame_bytes": self.max_bytes,
                "max_text_bytes": realtime_settings.REALTIME_MAX_TEXT_BYTES,
            },
        )

    async def on_disconnect(self, code: int | None) -> None:
        stream = getattr(self, "stream", None)
        if stream is None:
            return
        if _publishers.get(stream.slug) is self:
            del _publishers[stream.slug]
        self.recorder.flush()

    async def on_frame(self, payload: FrameHeader, envelope: ClientEnvelope) -> None:
        previous, self.header = self.header, None
        if previous is not None:
            await self.reject(
                InvalidMessage(
                    f"frame seq={previous.seq} kind={previous.kind} was not followed "
                    "by its JPEG: discarded"
                )
            )
        if payload.kind not in self.stream.kinds:
            offered = ", ".join(self.stream.kinds)
            raise InvalidMessage(
                f"payload.kind: {payload.kind!r} is not a kind of this stream "
                f"({offered})"
            )
        if payload.bytes > self.max_bytes:
            raise InvalidMessage(
                f"payload.bytes: a frame may have at most {self.max_bytes} bytes"
            )
        self.header = payload

    async def on_binary(self, data: bytes) -> None:
        header, self.header = self.header, None
        if header is None:
            await self.reject(
                InvalidMessage("a binary frame must follow its `frame` header")
            )
            return
        problem = jpeg_problem(data, header.bytes)
        if problem is not None:
            await self.reject(
                InvalidMessage(
                    f"frame seq={header.seq} kind={header.kind}: {problem}; "
                    "not published"
                )
            )
            return
        event = frame_event(
            seq=header.seq, kind=header.kind, captured_at=header.captured_at, jpeg=data
        )
        await publish_event(self.group, event)
        self.recorder.frame(
            seq=header.seq, kind=header.kind, captured_at=header.captured_at, jpeg=data
        )

    async def on_poses(self, payload: PosesPayload, envelope: ClientEnvelope) -> None:
        # Validated already: relay the client's own dict, encoded once for everyone.
        await publish_event(self.group, poses_event(envelope.payload))
        self.recorder.poses(envelope.payload)
