"""Writes of the messenger: conversations, members, read positions, notifications.

Every function is synchronous and keyword-only, writes in one transaction and has
its frames pushed after commit (``messenger.notify``), so a REST write and a socket
write push the same frames. Refusals are ``realtime.errors`` domain errors only; a
conversation the caller is not in is ``NotFound``. The message services live in
``messenger.messaging`` and are re-exported here, so callers import one module.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from realtime.errors import Conflict, Invalid, NotFound, PermissionDenied
from sessions_app.messenger import notify
from sessions_app.messenger.access import (
    NO_MESSAGE,
    conversation_uuid,
    membership,
    message_for_member,
    positive_int,
    title_clean,
)
from sessions_app.messenger.conf import knob
from sessions_app.messenger.messaging import (  # noqa: F401  (re-exported)
    message_delete,
    message_edit,
    message_send,
    reaction_toggle,
)
from sessions_app.messenger.models import (
    Conversation,
    ConversationMember,
    ConversationMessage,
)

Kind, Role = Conversation.Kind, ConversationMember.Role


def _user_ids(raw: Any, field: str = "member_ids") -> list[int]:
    """Distinct ids of existing, active users, in the order given."""
    if not isinstance(raw, list | tuple):
        raise Invalid("must be a list of user ids", field=field)
    ids = list(dict.fromkeys(positive_int(item, field) for item in raw))
    found = set(
        get_user_model()
        .objects.filter(pk__in=ids, is_active=True)
        .values_list("pk", flat=True)
    )
    missing = [user_id for user_id in ids if user_id not in found]
    if missing:
        raise Invalid(f"no such user: {missing[0]}", field=field)
    return ids


def _require_owner(member: ConversationMember, what: str) -> None:
    if not member.is_owner:
        raise PermissionDenied(f"only the owner may {what}")


# ----------------------------------------------------------------------- conversations
def conversation_create(
    *,
    user: Any,
    member_ids: Any = (),
    kind: str | None = None,
    title: str | None = None,
) -> tuple[Conversation, bool]:
    """A group (``user`` its owner, ``member_ids`` its members) or the one direct
    conversation of ``user`` and the single other id; ``(conversation, created)``.

    ``kind`` unset: direct when there is exactly one other member and no title.
    A direct conversation that exists is returned as it is (``created`` false).
    """
    if not isinstance(member_ids, list | tuple):
        raise Invalid("must be a list of user ids", field="member_ids")
    others = [i for i in _user_ids(member_ids) if i != user.pk]
    title = title_clean(title) if title is not None else ""
    if kind is None:
        kind = Kind.DIRECT if len(others) == 1 and not title else Kind.GROUP
    if kind not in Kind.values:
        raise Invalid("must be direct or group", field="kind")
    if kind == Kind.DIRECT:
        if len(others) != 1:
            raise Invalid("one other member, for a direct one", field="member_ids")
        if title:
            raise Invalid("a direct conversation has no title", field="title")
        return _direct(user, others[0])
    if len(others) + 1 > knob("MESSENGER_MAX_MEMBERS"):
        raise Invalid("too many members", field="member_ids")
    with transaction.atomic():
        conversation = Conversation.objects.create(
            kind=Kind.GROUP, title=title, created_by=user
        )
        ConversationMember.objects.bulk_create(
            [ConversationMember(conversation=conversation, user=user, role=Role.OWNER)]
            + [ConversationMember(conversation=conversation, user_id=i) for i in others]
        )
        notify.conversation_created(conversation, [user.pk, *others])
    return conversation, True


def _direct(user: Any, other_id: int) -> tuple[Conversation, bool]:
    key = ":".join(str(i) for i in sorted((user.pk, other_id)))
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                kind=Kind.DIRECT, direct_key=key, created_by=user
            )
            ConversationMember.objects.bulk_create(
                [
                    ConversationMember(conversation=conversation, user_id=user_id)
                    for user_id in (user.pk, other_id)
                ]
            )
            notify.conversation_created(conversation, [user.pk, other_id])
    except IntegrityError:  # it exists (perhaps created this very moment): that one
        return Conversation.objects.get(direct_key=key), False
    return conversation, True


def conversation_update(*, conversation_id: Any, user: Any, title: Any) -> Conversation:
    """The owner renames a group."""
    with transaction.atomic():
        member = membership(conversation_id=conversation_id, user=user)
        conversation = member.conversation
        if conversation.is_direct:
            raise Conflict("a direct conversation has no title")
        _require_owner(member, "rename the conversation")
        conversation.title = title_clean(title)
        conversation.save(update_fields=["title"])
        notify.conversation_updated(conversation, _members(conversation.pk))
    return conversation


def conversation_delete(*, conversation_id: Any, user: Any) -> None:
    """The owner deletes a group with its history; every member's sockets are told."""
    with transaction.atomic():
        member = membership(conversation_id=conversation_id, user=user)
        if member.conversation.is_direct:
            raise Conflict("a direct conversation cannot be deleted")
        _require_owner(member, "delete the conversation")
        everyone = _members(member.conversation_id)
        member.conversation.delete()
        notify.conversation_deleted(member.conversation_id, everyone)


def _members(conversation_id: Any) -> list[int]:
    return list(
        ConversationMember.objects.filter(conversation_id=conversation_id).values_list(
            "user_id", flat=True
        )
    )


# ----------------------------------------------------------------------- members
def member_add(
    *, conversation_id: Any, user: Any, user_id: Any
) -> tuple[ConversationMember, bool]:
    """The owner adds a user to a group; ``(member, added)`` (already in: not added).

    The newcomer reads the whole history but starts with nothing unread.
    """
    (new_id,) = _user_ids([user_id], field="user_id")
    with transaction.atomic():
        owner = membership(conversation_id=conversation_id, user=user, lock=True)
        conversation = owner.conversation
        if conversation.is_direct:
            raise Conflict("a direct conversation has two members")
        _require_owner(owner, "add members")
        existing = ConversationMember.objects.filter(
            conversation=conversation, user_id=new_id
        ).first()
        if existing is not None:
            return existing, False
        everyone = _members(conversation.pk)
        if len(everyone) >= knob("MESSENGER_MAX_MEMBERS"):
            raise Conflict("the conversation is full")
        member = ConversationMember.objects.create(
            conversation=conversation,
            user_id=new_id,
            last_read_seq=Conversation.objects.values_list("last_seq", flat=True).get(
                pk=conversation.pk
            ),
        )
        notify.member_added(conversation.pk, new_id, [*everyone, new_id])
    return member, True


def member_remove(*, conversation_id: Any, user: Any, user_id: Any) -> None:
    """The owner removes a member, or a member removes themself (leaves).

    The row goes, and with it all access; the removed user's sockets get
    ``member.removed`` and are unsubscribed. An owner who leaves hands the group to
    the longest-standing member; the last member to leave deletes it.
    """
    gone_id = positive_int(user_id, "user_id")
    with transaction.atomic():
        me = membership(conversation_id=conversation_id, user=user, lock=True)
        conversation = me.conversation
        if conversation.is_direct:
            raise Conflict("nobody can leave a direct conversation")
        if gone_id != user.pk:
            _require_owner(me, "remove members")
        everyone = _members(conversation.pk)
        if gone_id not in everyone:
            raise NotFound("no such member", field="user_id")
        ConversationMember.objects.filter(
            conversation=conversation, user_id=gone_id
        ).delete()
        rest = ConversationMember.objects.filter(conversation=conversation)
        if not rest.exists():
            conversation.delete()
        elif gone_id == user.pk and me.is_owner:
            heir = rest.order_by("joined_at", "id").first()
            rest.filter(pk=heir.pk).update(role=Role.OWNER)
        notify.member_removed(conversation.pk, gone_id, everyone)


# ----------------------------------------------------------------------- reading
def read_mark(
    *,
    user: Any,
    conversation_id: Any = None,
    message_id: Any = None,
    seq: Any = None,
) -> tuple[ConversationMember, bool]:
    """Move the caller's read position up to a message (or a seq; both given: the
    message); ``(member, moved)``. It never moves back: an older one changes nothing,
    pushes nothing."""
    with transaction.atomic():
        if message_id is not None:
            message, member = message_for_member(
                message_id=message_id, user=user, conversation_id=conversation_id
            )
            target = message.seq
        elif seq is not None and conversation_id is not None:
            member = membership(conversation_id=conversation_id, user=user)
            target = positive_int(seq, "seq")
            message = ConversationMessage.objects.filter(
                conversation_id=member.conversation_id, seq=target
            ).first()
            if message is None:
                raise NotFound(NO_MESSAGE, field="seq")
        else:
            raise Invalid("message_id or seq is required", field="message_id")
        now = timezone.now()
        moved = ConversationMember.objects.filter(
            pk=member.pk, last_read_seq__lt=target
        ).update(last_read_seq=target, last_read_at=now)
        if not moved:
            member.refresh_from_db(fields=["last_read_seq", "last_read_at"])
            return member, False
        member.last_read_seq, member.last_read_at = target, now
        last_seq = Conversation.objects.values_list("last_seq", flat=True).get(
            pk=member.conversation_id
        )
        notify.message_read(member, message.pk, last_seq)
    return member, True


def notification_set(
    *, conversation_id: Any, user: Any, muted: Any
) -> ConversationMember:
    """Mute or unmute a conversation for the caller (stored; clients stop alerting).

    Unread counts and ``conversation.activity`` go on: a muted conversation still
    shows what is new, it just does not ring."""
    if not isinstance(muted, bool):
        raise Invalid("must be true or false", field="muted")
    member = membership(conversation_id=conversation_uuid(conversation_id), user=user)
    ConversationMember.objects.filter(pk=member.pk).update(muted=muted)
    member.muted = muted
    return member


__all__ = [
    "conversation_create",
    "conversation_delete",
    "conversation_update",
    "member_add",
    "member_remove",
    "message_delete",
    "message_edit",
    "message_send",
    "notification_set",
    "reaction_toggle",
    "read_mark",
]
