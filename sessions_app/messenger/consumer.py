"""``/ws/messenger/``: one device of a user: conversations, presence, unread counts.

Thin: handlers validate the payload's shape, call the service the REST API calls too
(which stores, then pushes after commit), and answer. A socket hears a conversation's
messages only while subscribed to it and a member: it joins the conversation's group
after the membership check, and a removal takes every socket of the removed user out
of the group at once, on every process (``messenger.membership`` on their inbox),
before anyone is told. Stored messages reach it in seq order, once
(``order_stream``), holes read back after ``MESSENGER_GAP_WAIT``. While a member's
socket is not subscribed it hears only that something is new (``activity.<id>``) and
keeps the unread count itself; those typed events are ``InboxEvents``'
(``sessions_app.messenger.inbox``; docs/messenger.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from realtime.broadcast import broadcast
from realtime.consumers import EnvelopeConsumer
from realtime.dbthread import to_database_thread
from realtime.errors import NotFound
from realtime.protocol import ClientEnvelope, encode_frame
from sessions_app.messenger import notify, presence
from sessions_app.messenger.access import NO_CONVERSATION, conversation_uuid
from sessions_app.messenger.conf import knob
from sessions_app.messenger.frames import (
    MESSAGE_NEW,
    message_payload,
)
from sessions_app.messenger.groups import (
    activity_group,
    conversation_group,
    inbox_group,
)
from sessions_app.messenger.inbox import INBOX_EVENTS, InboxEvents
from sessions_app.messenger.messaging import (
    message_delete,
    message_edit,
    reaction_toggle,
)
from sessions_app.messenger.payloads import (
    MESSENGER_SENDS,
    ConversationRef,
    Edit,
    MessageRef,
    React,
    Send,
    Subscribe,
    Typing,
)
from sessions_app.messenger.selectors import (
    is_member,
    member_last_seq,
    member_states,
    messages_replay,
    presence_contacts,
)
from sessions_app.messenger.sending import send_queue
from sessions_app.messenger.services import read_mark

db = to_database_thread


class MessengerConsumer(InboxEvents, EnvelopeConsumer):
    endpoint = "messenger"
    users_only = True  # a guest's scoped token: 4005
    messages = {
        "conversation.subscribe": Subscribe,
        "conversation.unsubscribe": ConversationRef,
        "message.send": Send,
        "message.edit": Edit,
        "message.delete": MessageRef,
        "message.react": React,
        "message.read": MessageRef,
        "typing": Typing,
    }
    sends = MESSENGER_SENDS  # server → client types (AsyncAPI)
    events = INBOX_EVENTS  # handled by InboxEvents
    throttle_setting = "MESSENGER_THROTTLES"  # per socket; messenger conf

    # ------------------------------------------------------------------ connect
    async def on_connect(self) -> None:
        user_id = self.user.pk
        # Before the inbox is joined: its events (held until this returns) read them.
        self.subscribed, self.states = set(), {}
        self.contacts, self.online_contacts = set(), set()
        self.inbox = inbox_group(user_id)
        await self.join_group(self.inbox)
        # Enter first, then look: of two first devices on at once, the later looker
        # sees the other; at worst both announce, and watchers take it once.
        await self.enter_room(self.inbox)
        first_device = set(await presence.aroom_members(self.inbox)) <= {self.conn_id}
        self.contacts = await db(presence_contacts)(
            user_id=user_id, max_group=knob("MESSENGER_PRESENCE_MAX_GROUP")
        )
        self.online_contacts = await presence.online_among(self.contacts)
        self.states = await db(member_states)(user_id=user_id)
        for conversation_id in self.states:
            await self.join_group(activity_group(conversation_id))
        await self.send_frame(
            "system.connected",
            {"user_id": user_id, "online": sorted(self.online_contacts)},
        )
        presence.sweeper().add(self)
        if first_device and self.contacts:
            await presence.announce(
                user_id=user_id, online=True, contacts=self.contacts
            )

    async def on_disconnect(self, code: int | None) -> None:
        if not hasattr(self, "inbox"):
            return  # closed before it was connected
        presence.sweeper().discard(self)
        # Presence was already left: no entry of this user means the last device.
        if self.contacts and not await presence.ais_online(self.user.pk):
            await presence.announce(
                user_id=self.user.pk, online=False, contacts=self.contacts
            )

    async def fill_gap(
        self, stream: str, after: int, upto: int
    ) -> Iterable[tuple[int, str]]:
        conversation_id = stream.partition(".")[2]

        def rows() -> list[tuple[int, str]]:
            return [
                (m.seq, encode_frame(MESSAGE_NEW, message_payload(m)))
                for batch in messages_replay(
                    conversation_id=conversation_id, after=after, upto=upto
                )
                for m in batch
            ]

        return await db(rows)()

    # ------------------------------------------------------------------ subscribe
    async def on_conversation_subscribe(
        self, payload: Subscribe, envelope: ClientEnvelope
    ) -> None:
        cid = str(conversation_uuid(payload.conversation_id))
        user_id, group = self.user.pk, conversation_group(cid)
        await db(member_last_seq)(conversation_id=cid, user_id=user_id)  # NotFound
        # Joined before last_seq is read: what is stored after the read reaches us,
        # held until the replay is out, then in seq order.
        self.outbox.hold(group)
        await self.join_group(group)
        try:
            last_seq = await db(member_last_seq)(conversation_id=cid, user_id=user_id)
            if group not in self.groups_joined:  # removed while we read
                raise NotFound(NO_CONVERSATION)
            self.subscribed.add(cid)
            await self.leave_group(activity_group(cid))
            await self.reply(
                envelope,
                "conversation.subscribed",
                {"conversation_id": cid, "last_seq": last_seq},
            )
            if payload.since is not None:
                await self._replay(cid, payload.since, last_seq)
                synced = {"conversation_id": cid, "last_seq": last_seq}
                await self.send_frame("conversation.synced", synced)
        except BaseException:  # not subscribed after all: nothing held forever
            await self._drop(cid)
            raise
        self.order_stream(group, last=last_seq, gap_wait=knob("MESSENGER_GAP_WAIT"))

    async def _replay(self, cid: str, since: int, upto: int) -> None:
        def batches() -> list[list[str]]:
            return [
                [encode_frame(MESSAGE_NEW, message_payload(m)) for m in batch]
                for batch in messages_replay(
                    conversation_id=cid, after=since, upto=upto
                )
            ]

        for batch in await db(batches)():
            for text in batch:
                await self.send_text(text)

    async def on_conversation_unsubscribe(
        self, payload: ConversationRef, envelope: ClientEnvelope
    ) -> None:
        cid = str(conversation_uuid(payload.conversation_id))
        if cid in self.subscribed:
            await self._drop(cid)
            if cid in self.states:  # still a member: hears of activity again
                await self.join_group(activity_group(cid))
        await self.reply(
            envelope, "conversation.unsubscribed", {"conversation_id": cid}
        )

    # ------------------------------------------------------------------ messages
    async def on_message_send(self, payload: Send, envelope: ClientEnvelope) -> None:
        # Stored with the sends that queued meanwhile, in one transaction, and pushed
        # from the event loop: the database thread, shared by every socket, was the
        # bound (docs/performance.md, W5).
        message, created = await send_queue().submit(
            conversation_id=payload.conversation_id,
            user=self.user,
            content=payload.content,
            client_id=payload.client_id,
            reply_to=payload.reply_to,
        )
        cid = str(message.conversation_id)
        # A subscribed socket gets the broadcast, in order; otherwise, and for a
        # retry (stored once, pushed once), the message is the answer.
        if not created or cid not in self.subscribed:
            await self.reply(envelope, MESSAGE_NEW, message_payload(message))

    async def on_message_edit(self, payload: Edit, envelope: ClientEnvelope) -> None:
        await notify.deferred(
            message_edit,
            message_id=payload.message_id,
            user=self.user,
            content=payload.content,
        )

    async def on_message_delete(
        self, payload: MessageRef, envelope: ClientEnvelope
    ) -> None:
        await notify.deferred(
            message_delete, message_id=payload.message_id, user=self.user
        )

    async def on_message_react(self, payload: React, envelope: ClientEnvelope) -> None:
        await notify.deferred(
            reaction_toggle,
            message_id=payload.message_id,
            user=self.user,
            emoji=payload.emoji,
        )

    async def on_message_read(
        self, payload: MessageRef, envelope: ClientEnvelope
    ) -> None:
        await notify.deferred(read_mark, message_id=payload.message_id, user=self.user)

    async def on_typing(self, payload: Typing, envelope: ClientEnvelope) -> None:
        cid = str(conversation_uuid(payload.conversation_id))
        if cid not in self.subscribed and not await db(is_member)(
            conversation_id=cid, user_id=self.user.pk
        ):
            raise NotFound(NO_CONVERSATION)
        text = encode_frame(
            "typing",
            {
                "conversation_id": cid,
                "user_id": self.user.pk,
                "is_typing": payload.is_typing,
            },
        )
        await broadcast(conversation_group(cid), text, exclude=self.channel_name)
