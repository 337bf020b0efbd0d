"""What a messenger socket hears on its inbox and activity groups: typed hub events.

Mixed into ``MessengerConsumer`` (its ``events`` table names these handlers): a
new message where the socket is not subscribed (it counts the unread itself), exact
unread counts, membership (join or leave a conversation's groups at once), and
contacts coming and going (told once per socket, however many notices arrive).
"""

from __future__ import annotations

from typing import Any

from realtime.protocol import encode_frame
from sessions_app.messenger import notify, presence
from sessions_app.messenger.frames import CONVERSATION_ACTIVITY
from sessions_app.messenger.groups import activity_group, conversation_group
from sessions_app.messenger.selectors import MemberState

INBOX_EVENTS = frozenset(
    {notify.ACTIVITY, notify.UNREAD, notify.MEMBERSHIP, presence.PRESENCE}
)


class InboxEvents:
    """The hub-event half of a messenger socket (``self`` is the consumer)."""

    states: dict[str, MemberState]  # conversation id → unread, muted
    subscribed: set[str]  # conversation ids this socket hears
    contacts: set[int]  # who shares a conversation with this user (presence)
    online_contacts: set[int]  # of those, who this socket was told is on

    async def event_messenger_activity(self: Any, event: dict) -> None:
        """A new message in a conversation this socket is not subscribed to."""
        state = self.states.get(event["conversation_id"])
        if state is None:
            return
        mine = event["sender_id"] == self.user.pk
        if not mine:
            state.unread += 1
        await self._activity(event["conversation_id"], event["seq"], state, not mine)

    async def event_messenger_unread(self: Any, event: dict) -> None:
        """The exact count after a read or a delete: it replaces ours."""
        state = self.states.get(event["conversation_id"])
        if state is None:
            return
        state.unread = event["unread"]
        if event["conversation_id"] not in self.subscribed:
            await self._activity(event["conversation_id"], event["seq"], state, False)

    async def _activity(
        self, cid: str, seq: int, state: MemberState, ring: bool
    ) -> None:
        payload = {"conversation_id": cid, "seq": seq, "unread": state.unread}
        payload["notify"] = ring and not state.muted
        await self.send_frame(CONVERSATION_ACTIVITY, payload)

    async def event_messenger_membership(self: Any, event: dict) -> None:
        """This user joined or left a conversation, or someone joined one of its."""
        cid = event["conversation_id"]
        if event["user_id"] in (None, self.user.pk):
            if not event["joined"]:
                self.states.pop(cid, None)
                await self._drop(cid)
                await self.leave_group(activity_group(cid))
                return
            if cid not in self.states:
                self.states[cid] = MemberState(0, False)
                await self.join_group(activity_group(cid))
        for user_id in event.get("member_ids", ()):  # new contacts: are they on?
            if user_id != self.user.pk and user_id not in self.contacts:
                self.contacts.add(user_id)
                if await presence.ais_online(user_id):
                    text = encode_frame(presence.USER_ONLINE, {"user_id": user_id})
                    await self.contact_changed(user_id, True, text)

    async def event_messenger_presence(self: Any, event: dict) -> None:
        await self.contact_changed(event["user_id"], event["online"], event["text"])

    async def contact_changed(self: Any, user_id: int, online: bool, text: str) -> None:
        """A contact came or went (a notice, or this process's sweep): told once."""
        if online:  # even if already told: a sweep reading now must not undo it
            presence.sweeper().told_online(user_id)
        if online == (user_id in self.online_contacts):
            return
        if online:
            self.online_contacts.add(user_id)
            self.contacts.add(user_id)
        else:
            self.online_contacts.discard(user_id)
        await self.send_text(text)

    async def _drop(self: Any, cid: str) -> None:
        """Stop hearing the conversation's messages (unsubscribed, or removed)."""
        self.subscribed.discard(cid)
        group = conversation_group(cid)
        self.outbox.unorder(group)
        await self.leave_group(group)
