"""``/ws/sessions/<code>/``: one live session's chat, questions, typing and presence.

Thin: each handler validates (the payload models), calls a service in the database
thread, then broadcasts what was stored. Who the participant is, is resolved once at
connect and kept on the connection; receivers never query anything.

Ordering (docs/sessions.md): the socket joins the session's group before it reads
``last_seq``, replays up to that seq, and from then on delivers stored messages
strictly in seq order: a frame that arrives early (another server process broadcast
it first) waits for the ones before it, and a hole that no broadcast fills within
``SESSION_GAP_WAIT`` seconds is read from the database.

Joins and leaves go through ``notices`` (coalesced per room during join storms).
"""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from realtime.broadcast import broadcast
from realtime.consumers import CloseConnection, EnvelopeConsumer
from realtime.groups import session_group, session_hosts_group
from realtime.protocol import (
    ClientEnvelope,
    CloseCode,
    Forbidden,
    InvalidMessage,
    encode_frame,
)
from sessions_app import notify
from sessions_app.frames import (
    hidden_payload,
    message_frame,
    participant_payload,
    question_update_payload,
    session_payload,
)
from sessions_app.models import Message, Participant, Session
from sessions_app.notices import JOINED, LEFT, Notice, coalescer
from sessions_app.payloads import (
    ChatSend,
    Empty,
    MessageRef,
    ParticipantUpdate,
    QuestionAnswer,
    QuestionAsk,
    Typing,
)
from sessions_app.selectors import (
    REPLAY_BATCH,
    participant_get,
    session_backlog,
    session_get,
    session_messages,
    session_online_by_id,
    session_online_ids,
    welcome_online,
)
from sessions_app.services import (
    ParticipantGone,
    SessionClosed,
    message_hide,
    message_post,
    participant_for_user,
    participant_rename,
    participant_seen,
    question_answer,
    question_approve,
    question_upvote,
    session_close,
)

logger = logging.getLogger("sessions_app.consumer")
db = database_sync_to_async

DEFAULT_GAP_WAIT = 0.5  # seconds; cross-process reordering settles in milliseconds
_SINCE_RE = re.compile(r"^[0-9]{1,15}$")


def gap_wait() -> float:
    return float(getattr(settings, "SESSION_GAP_WAIT", DEFAULT_GAP_WAIT))


class SessionConsumer(EnvelopeConsumer):
    endpoint = "sessions"
    messages = {
        "chat.send": ChatSend,
        "question.ask": QuestionAsk,
        "question.upvote": MessageRef,
        "question.answer": QuestionAnswer,
        "question.approve": MessageRef,
        "message.hide": MessageRef,
        "typing": Typing,
        "participant.update": ParticipantUpdate,
        "session.close": Empty,
    }
    # Per connection: generous for people, a wall for scripts.
    throttles = {
        "ping": (10, 1.0),
        "typing": (5, 1.0),
        "chat.send": (100, 10.0),
        "question.ask": (30, 10.0),
        "question.upvote": (60, 10.0),
        "participant.update": (5, 10.0),
    }

    _gap_task: asyncio.Task | None = None
    _seq_lock: asyncio.Lock | None = None

    @property
    def seq_lock(self) -> asyncio.Lock:
        """Made when a frame first arrives out of order (most sockets never see one)."""
        if self._seq_lock is None:
            self._seq_lock = asyncio.Lock()
        return self._seq_lock

    # ------------------------------------------------------------------ connect
    async def on_connect(self) -> None:
        self.participant: Participant | None = None
        self.present = False
        self.last_seq_sent = 0
        self._ahead: dict[int, str] = {}  # seq -> frame that arrived before its turn

        code = self.scope["url_route"]["kwargs"]["code"]
        session, participant = await db(self._enter)(code)
        self.session_id = session.pk
        self.session_code = session.code
        self.participant = participant
        since, since_error = self._since()

        # Join the group before reading last_seq: whatever is stored after the read
        # is broadcast after we joined, so it reaches us (queued until we return).
        group = session_group(session.pk)
        await self.join_group(group)
        if participant.is_host:
            await self.join_group(session_hosts_group(session.pk))
        # Enter, then read who is here (once per join), on the event loop that owns
        # presence (no rows are read). Entering first: of two sockets entering at
        # once, on two processes, the later reader lists the other. Nothing awaits
        # in between: for the other sockets of this process it is one step.
        you = participant_payload(participant)
        self.enter_room(group, you)
        self.present = True
        online = session_online_by_id(session_id=session.pk, but=self.conn_id)
        first_tab = participant.pk not in online  # no other tab of ours is here
        online[participant.pk] = you  # the newest tab's names win
        marks = coalescer().welcome_read()  # see notices.net_changes
        backlog = await db(session_backlog)(
            session_id=session.pk,
            participant_id=None if participant.is_host else participant.pk,
        )
        last_seq = backlog.last_seq
        await self.send_frame(
            "session.welcome",
            {
                "session": session_payload(session),
                "you": you,
                "online": welcome_online(
                    online,
                    you_id=participant.pk,
                    limit=int(settings.SESSION_WELCOME_ONLINE_MAX),
                ),
                "online_count": len(online),
                "last_seq": last_seq,
            },
        )
        if since_error is not None:
            await self.send_error(since_error)
        elif since is not None:
            await self._replay(since, last_seq)
            await self.send_frame("session.synced", {"last_seq": last_seq})
        self.last_seq_sent = last_seq
        for question in backlog.pending_questions:
            await self.send_frame(*message_frame(question))
        # Alone in the room: nobody to tell, and whoever enters later reads us in
        # their welcome (we entered presence before our own read).
        if first_tab and len(online) > 1:
            await self._tell_others(JOINED, participant, *marks, len(online))

    def _enter(self, code: str) -> tuple[Session, Participant]:
        """The session and who this socket is in it: one trip to the database thread.

        Closes 4004 (unknown code), 4010 (closed), 4005 (not a participant).
        """
        session = session_get(code=code)
        if session is None:
            raise CloseConnection(CloseCode.NOT_FOUND)
        if not session.is_open:
            raise CloseConnection(CloseCode.SESSION_CLOSED)
        return session, self._participant_for(session)

    def _participant_for(self, session: Session) -> Participant:
        """Who this socket is in ``session`` (database thread); close 4005 if nobody."""
        claims = self.auth.claims
        if claims:
            if claims.get("kind") != "participant" or claims.get("session") != (
                session.code
            ):
                raise CloseConnection(CloseCode.FORBIDDEN)
            found = participant_get(
                session_id=session.pk, participant_id=claims.get("pid")
            )
            if found is None:
                raise CloseConnection(CloseCode.FORBIDDEN)
            return found
        if not self.user.is_authenticated:  # pragma: no cover - auth_required
            raise CloseConnection(CloseCode.NO_CREDENTIAL)
        return participant_for_user(session=session, user=self.user)

    def _since(self) -> tuple[int | None, InvalidMessage | None]:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        if "since" not in query:
            return None, None
        raw = query["since"][0]
        if not _SINCE_RE.match(raw):
            return None, InvalidMessage(
                "query.since: must be a non-negative integer; nothing was replayed"
            )
        return int(raw), None

    async def _replay(self, since: int, upto: int) -> None:
        after = since
        while after < upto:
            rows = await db(session_messages)(
                session_id=self.session_id, after=after, upto=upto, limit=REPLAY_BATCH
            )
            for message in rows:
                await self.send_frame(*message_frame(message))
            if len(rows) < REPLAY_BATCH:
                return
            after = rows[-1].seq

    def on_leaving(self) -> None:
        if getattr(self, "present", False):
            # A welcome read from now on no longer lists this socket.
            self.left_mark = coalescer().welcomes

    async def on_disconnect(self, code: int | None) -> None:
        participant = getattr(self, "participant", None)
        if participant is None or not getattr(self, "present", False):
            return
        # Presence was already left: a participant with no other tab has now gone.
        # Told even if this tab never got to announce the join (its connect failed):
        # the welcomes read meanwhile listed it.
        online = session_online_ids(session_id=self.session_id)
        if online and participant.pk not in online:
            await self._tell_others(
                LEFT, participant, self.left_mark, self.left_mark, len(online)
            )
        await db(participant_seen)(participant_id=participant.pk)

    async def _tell_others(
        self,
        type_: str,
        participant: Participant,
        before: int,
        after: int,
        room_size: int,
    ) -> None:
        notice = Notice(
            type_, participant_payload(participant), self.channel_name, before, after
        )
        await coalescer().tell(self.session_id, notice, room_size)

    # ------------------------------------------------------------------ ordered fan-out
    def fanout_ready(self, event: dict) -> bool:
        """The hub may write a frame at once if it has no seq or the next one."""
        seq = event.get("seq")
        return seq is None or (seq == self.last_seq_sent + 1 and not self._ahead)

    def fanout_done(self, event: dict) -> None:
        seq = event.get("seq")
        if seq is not None:
            self.last_seq_sent = seq

    async def realtime_fanout(self, event: dict) -> None:
        """Stored messages (with a seq) go out in seq order, once; the rest as is."""
        seq = event.get("seq")
        if seq is None:
            await super().realtime_fanout(event)
            return
        if self.fanout_ready(event) and not self.closing:
            # The common case, in order: no lock, no buffering, one socket write.
            self.fanout_done(event)
            await self.write_broadcast(event["text"])
            return
        if self.closing or seq <= self.last_seq_sent:
            return  # already replayed or delivered
        self._ahead.setdefault(seq, event["text"])
        if self.seq_lock.locked():
            # A gap fill is reading the database: it flushes this when it is done.
            # Never wait here: the hub delivers to every receiver in turn.
            return
        await self._flush()
        if self._ahead and (self._gap_task is None or self._gap_task.done()):
            self._gap_task = self.spawn(self._fill_gap())

    async def _flush(self) -> None:
        while self.last_seq_sent + 1 in self._ahead:
            self.last_seq_sent += 1
            await self.send_text(self._ahead.pop(self.last_seq_sent))

    async def _fill_gap(self) -> None:
        """A seq is missing after a wait: read the hole from the database."""
        await asyncio.sleep(gap_wait())
        async with self.seq_lock:
            if not self._ahead:
                return
            rows = await db(session_messages)(
                session_id=self.session_id,
                after=self.last_seq_sent,
                upto=max(self._ahead),
            )
            for message in rows:
                if message.seq > self.last_seq_sent:
                    self._ahead[message.seq] = encode_frame(*message_frame(message))
            await self._flush()
            if self._ahead:  # a hole the database does not have: skip it, say so
                logger.warning(
                    "session %s: seq %s..%s missing, skipped",
                    self.session_id,
                    self.last_seq_sent + 1,
                    min(self._ahead) - 1,
                )
                self.last_seq_sent = min(self._ahead) - 1
                await self._flush()

    # ------------------------------------------------------------------ messages
    async def on_chat_send(self, payload: ChatSend, envelope: ClientEnvelope) -> None:
        await self._post(payload, envelope, Message.Kind.CHAT)

    async def on_question_ask(
        self, payload: QuestionAsk, envelope: ClientEnvelope
    ) -> None:
        await self._post(payload, envelope, Message.Kind.QUESTION)

    async def _post(
        self, payload: ChatSend, envelope: ClientEnvelope, kind: str
    ) -> None:
        try:
            message, created = await db(message_post)(
                session_id=self.session_id,
                participant=self.participant,
                content=payload.content,
                kind=kind,
                client_id=payload.client_id,
            )
        except SessionClosed:
            raise CloseConnection(CloseCode.SESSION_CLOSED) from None
        except ParticipantGone:
            raise CloseConnection(CloseCode.FORBIDDEN) from None
        if created:
            await notify.message_stored(message)
            if message.seq is None:  # pending: the asker learns it waits for approval
                await self.reply(envelope, *message_frame(message))
        elif message.seq is None or message.seq <= self.last_seq_sent:
            # A retry: the original, to this socket only. One still on its way to
            # this socket (seq ahead) arrives in order by itself.
            await self.reply(envelope, *message_frame(message))

    async def on_question_upvote(
        self, payload: MessageRef, envelope: ClientEnvelope
    ) -> None:
        question, counted = await db(question_upvote)(
            session_id=self.session_id,
            participant=self.participant,
            message_id=payload.message_id,
        )
        if counted:
            await notify.question_updated(question)
        else:  # once per participant: the state, unchanged, to the voter only
            await self.reply(
                envelope, "question.updated", question_update_payload(question)
            )

    async def on_question_answer(
        self, payload: QuestionAnswer, envelope: ClientEnvelope
    ) -> None:
        self._require_host("answer questions")
        question, changed = await db(question_answer)(
            session_id=self.session_id,
            by=self.participant,
            message_id=payload.message_id,
            answered=payload.answered,
        )
        if changed:
            await notify.question_updated(question)
        else:
            await self.reply(
                envelope, "question.updated", question_update_payload(question)
            )

    async def on_question_approve(
        self, payload: MessageRef, envelope: ClientEnvelope
    ) -> None:
        self._require_host("approve questions")
        try:
            question = await db(question_approve)(
                session_id=self.session_id,
                by=self.participant,
                message_id=payload.message_id,
            )
        except SessionClosed:
            raise CloseConnection(CloseCode.SESSION_CLOSED) from None
        await notify.message_stored(question)

    async def on_message_hide(
        self, payload: MessageRef, envelope: ClientEnvelope
    ) -> None:
        self._require_host("hide messages")
        message, changed = await db(message_hide)(
            session_id=self.session_id,
            by=self.participant,
            message_id=payload.message_id,
        )
        if changed:
            await notify.message_hidden(message)
        else:
            await self.reply(envelope, "message.hidden", hidden_payload(message))

    # ------------------------------------------------------------------ people
    async def on_typing(self, payload: Typing, envelope: ClientEnvelope) -> None:
        participant = self.participant
        text = encode_frame(
            "typing",
            {
                "participant_id": participant.pk,
                "nickname": participant.nickname,
                "is_typing": payload.is_typing,
            },
        )
        await broadcast(session_group(self.session_id), text, exclude=self.channel_name)

    async def on_participant_update(
        self, payload: ParticipantUpdate, envelope: ClientEnvelope
    ) -> None:
        try:
            participant = await db(participant_rename)(
                participant=self.participant, nickname=payload.nickname
            )
        except ParticipantGone:
            raise CloseConnection(CloseCode.FORBIDDEN) from None
        group = session_group(self.session_id)
        self.enter_room(group, participant_payload(participant))
        text = encode_frame("participant.updated", participant_payload(participant))
        await broadcast(group, text)

    def _require_host(self, what: str) -> None:
        """Refuse a non-host on the event loop, before a trip to the shared database
        thread (the service checks again, with the row)."""
        if not self.participant.is_host:
            raise Forbidden(f"only the host may {what}")

    async def on_session_close(self, payload: Empty, envelope: ClientEnvelope) -> None:
        self._require_host("close the session")
        closed = await db(session_close)(
            session_id=self.session_id, by=self.participant
        )
        if closed is None:  # someone closed it first; their close reaches us too
            raise CloseConnection(CloseCode.SESSION_CLOSED)
        await notify.session_closed(
            session_id=closed.pk, code=closed.code, closed_at=closed.closed_at
        )
