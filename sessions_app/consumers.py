"""``/ws/sessions/<code>/``: one live session's chat, questions, typing and presence.

Thin: each handler validates (the payload models), calls a service in the database
thread, then broadcasts what was stored. Who the participant is, is resolved once at
connect and kept on the connection; receivers never query anything.

Ordering (docs/sessions.md): the socket joins the session's group before it reads
``last_seq``, replays up to that seq, then orders the group's stream from there
(``order_stream``): stored messages go out strictly in seq order, once, and a hole
no broadcast fills within ``SESSION_GAP_WAIT`` seconds is read back (``fill_gap``).

Joins and leaves go through ``notices`` (coalesced per room during join storms).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from realtime.broadcast import broadcast
from realtime.consumers import CloseConnection, EnvelopeConsumer
from realtime.dbthread import to_database_thread
from realtime.groups import session_group, session_hosts_group
from realtime.protocol import ClientEnvelope, CloseCode, Forbidden, encode_frame
from sessions_app import notify
from sessions_app.conf import sessions_settings
from sessions_app.frames import (
    hidden_payload,
    message_frame,
    participant_payload,
    question_update_payload,
    session_payload,
)
from sessions_app.joining import asession_entry, replay, since_from_query
from sessions_app.models import Message, Participant
from sessions_app.notices import JOINED, LEFT, Notice, coalescer
from sessions_app.payloads import (
    SESSION_SENDS,
    ChatSend,
    Empty,
    MessageRef,
    ParticipantUpdate,
    QuestionAnswer,
    QuestionAsk,
    Typing,
)
from sessions_app.posting import post_queue
from sessions_app.selectors import (
    asession_online_by_id,
    asession_online_ids,
    session_backlog,
    session_messages,
    welcome_online,
)
from sessions_app.services import (
    ParticipantGone,
    SessionClosed,
    message_hide,
    participant_rename,
    participant_seen,
    question_answer,
    question_approve,
    question_upvote,
    session_close,
)

logger = logging.getLogger("sessions_app.consumer")
db = to_database_thread


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
    sends = SESSION_SENDS  # server → client types (AsyncAPI)
    throttle_setting = "SESSION_THROTTLES"  # per connection; sessions_app.conf
    participant: Participant | None = None
    present = False

    # ------------------------------------------------------------------ connect
    async def on_connect(self) -> None:
        code = self.scope["url_route"]["kwargs"]["code"]
        session, participant = await asession_entry(code=code, auth=self.auth)
        self.session_id = session.pk
        self.participant = participant
        since, since_error = since_from_query(self.scope.get("query_string", b""))

        # Join the group before reading last_seq: whatever is stored after the read
        # is broadcast after we joined, so it reaches us (held until we return).
        self.group = group = session_group(session.pk)
        await self.join_group(group)
        if participant.is_host:
            await self.join_group(session_hosts_group(session.pk))
        # Enter, then read who is here (once per join), on the event loop that owns
        # presence (no rows are read). Entering first: of two sockets entering at
        # once, on two processes, the later reader lists the other. On the local
        # store nothing yields in between: for the other sockets of this process
        # it is one step (on Redis processes interleave anyway: notices never
        # cancel there).
        you = participant_payload(participant)
        await self.enter_room(group, you)
        self.present = True
        online = await asession_online_by_id(session_id=session.pk, but=self.conn_id)
        first_tab = participant.pk not in online  # no other tab of ours is here
        online[participant.pk] = you  # the newest tab's names win
        marks = coalescer().welcome_read()  # see notices.net_changes
        backlog = await db(session_backlog)(
            session_id=session.pk,
            participant_id=None if participant.is_host else participant.pk,
        )
        if not backlog.is_open:
            # Closed by another process after this process cached the session
            # (SESSION_CACHE_TTL), and before our group joined: its close did not
            # reach us, so we close here (a later close reaches the group).
            raise CloseConnection(CloseCode.SESSION_CLOSED)
        last_seq = backlog.last_seq
        limit = sessions_settings.SESSION_WELCOME_ONLINE_MAX
        await self.send_frame(
            "session.welcome",
            {
                "session": session_payload(session),
                "you": you,
                "online": welcome_online(online, you_id=participant.pk, limit=limit),
                "online_count": len(online),
                "last_seq": last_seq,
            },
        )
        if since_error is not None:
            await self.send_error(since_error)
        elif since is not None:
            await replay(
                self.send_frame, session_id=session.pk, since=since, upto=last_seq
            )
            await self.send_frame("session.synced", {"last_seq": last_seq})
        gap_wait = sessions_settings.SESSION_GAP_WAIT
        self.order_stream(group, last=last_seq, gap_wait=gap_wait)
        for question in backlog.pending_questions:
            await self.send_frame(*message_frame(question))
        # Alone in the room: nobody to tell, and whoever enters later reads us in
        # their welcome (we entered presence before our own read).
        if first_tab and len(online) > 1:
            await self._tell_others(JOINED, participant, *marks, len(online))

    async def fill_gap(
        self, stream: str, after: int, upto: int
    ) -> Iterable[tuple[int, str]]:
        rows = await db(session_messages)(
            session_id=self.session_id, after=after, upto=upto
        )
        return [(row.seq, encode_frame(*message_frame(row))) for row in rows]

    def on_leaving(self) -> None:
        if self.present:
            # A welcome read from now on no longer lists this socket.
            self.left_mark = coalescer().welcomes

    async def on_disconnect(self, code: int | None) -> None:
        participant = self.participant
        if participant is None or not self.present:
            return
        # Presence was already left: a participant with no other tab has now gone.
        # Told even if this tab never got to announce the join (its connect failed):
        # the welcomes read meanwhile listed it.
        online = await asession_online_ids(session_id=self.session_id)
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
            # Stored with the posts that arrived meanwhile (one commit), and pushed
            # to the session by the queue, in seq order, before it answers here.
            message, created = await post_queue().submit(
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
            if message.seq is None:  # pending: the asker learns it waits for approval
                await self.reply(envelope, *message_frame(message))
        elif message.seq is None or message.seq <= (
            self.outbox.last_seq(self.group) or 0
        ):
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
        await self.enter_room(group, participant_payload(participant))
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
