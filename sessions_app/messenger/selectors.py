"""Reads of the messenger: conversation lists with unread counts, history pages, the
socket's membership checks and replay, and who shares a conversation with whom.

Unread counts are computed by a query, not kept as counters: a counter per member
would be one more write per member on every send (500 in a full group) and would
need mending on every delete and every read; the query is one index range per
conversation (``(conversation, seq)`` is unique, so indexed) past the read position.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Func, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce

from realtime.errors import NotFound
from sessions_app.messenger.access import NO_CONVERSATION, conversation_uuid, membership
from sessions_app.messenger.conf import knob
from sessions_app.messenger.models import (
    Conversation,
    ConversationMember,
    ConversationMessage,
    MessageReaction,
)


@dataclass
class ConversationEntry:
    """One conversation as its member sees it."""

    conversation: Conversation
    member: ConversationMember
    unread: int
    last_message: ConversationMessage | None = None
    member_ids: list[int] = field(default_factory=list)


def _unread() -> Coalesce:
    """Per member row: messages past its read position, not its own, not deleted."""
    rows = (
        ConversationMessage.objects.filter(
            conversation_id=OuterRef("conversation_id"),
            seq__gt=OuterRef("last_read_seq"),
            deleted_at__isnull=True,
        )
        .exclude(sender_id=OuterRef("user_id"))
        .order_by()
        .annotate(n=Func(F("pk"), function="COUNT"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def member_unread_counts(*, conversation_id: Any) -> dict[int, int]:
    """``{user_id: unread}`` for every member of the conversation, in one query."""
    rows = ConversationMember.objects.filter(
        conversation_id=conversation_uuid(conversation_id)
    ).annotate(unread=_unread())
    return dict(rows.values_list("user_id", "unread"))


def _entries(members: Any) -> list[ConversationEntry]:
    """Entries for member rows, with last messages and member ids: three queries
    however many conversations."""
    newest = ConversationMessage.objects.filter(
        conversation_id=OuterRef("conversation_id")
    ).order_by("-seq")
    members = (
        members.select_related("conversation")
        .annotate(
            unread=_unread(),
            last_message_id=Subquery(newest.values("pk")[:1]),
            last_at=Coalesce(
                Subquery(newest.values("created_at")[:1]), F("conversation__created_at")
            ),
        )
        .order_by("-last_at", "-conversation__created_at")
    )
    members = list(members)
    last = ConversationMessage.objects.in_bulk(
        [m.last_message_id for m in members if m.last_message_id is not None]
    )
    ids = [m.conversation_id for m in members]
    everyone: dict[Any, list[int]] = defaultdict(list)
    for conversation_id, user_id in ConversationMember.objects.filter(
        conversation_id__in=ids
    ).values_list("conversation_id", "user_id"):
        everyone[conversation_id].append(user_id)
    return [
        ConversationEntry(
            conversation=m.conversation,
            member=m,
            unread=m.unread,
            last_message=last.get(m.last_message_id),
            member_ids=sorted(everyone[m.conversation_id]),
        )
        for m in members
    ]


def conversation_list(*, user: Any) -> list[ConversationEntry]:
    """The user's conversations, most recently active first."""
    return _entries(ConversationMember.objects.filter(user_id=user.pk))


def conversation_detail(*, conversation_id: Any, user: Any) -> ConversationEntry:
    """One conversation of the caller's, or ``NotFound``."""
    found = _entries(
        ConversationMember.objects.filter(
            conversation_id=conversation_uuid(conversation_id), user_id=user.pk
        )
    )
    if not found:
        raise NotFound(NO_CONVERSATION)
    return found[0]


@dataclass
class MessagePage:
    messages: list[ConversationMessage]
    reactions: dict[int, dict[str, int]]
    has_older: bool
    has_newer: bool
    last_seq: int


def messages_page(
    *,
    conversation_id: Any,
    user: Any,
    after: int | None = None,
    before: int | None = None,
    limit: int | None = None,
) -> MessagePage:
    """Up to ``limit`` messages in seq order (keyset by seq, stable while new ones
    arrive): those after ``after``, else those before ``before``, else the newest.
    Tombstones included: history stays gapless."""
    member = membership(conversation_id=conversation_id, user=user)
    limit = limit or knob("MESSENGER_PAGE_SIZE")
    rows = ConversationMessage.objects.filter(conversation_id=member.conversation_id)
    if after is not None:
        rows = rows.filter(seq__gt=after)
        if before is not None:
            rows = rows.filter(seq__lt=before)
        found = list(rows.order_by("seq")[: limit + 1])
        more, found = len(found) > limit, found[:limit]
        has_older, has_newer = after > 0, more
    else:
        if before is not None:
            rows = rows.filter(seq__lt=before)
        found = list(rows.order_by("-seq")[: limit + 1])
        more, found = len(found) > limit, found[:limit][::-1]
        has_older, has_newer = more, before is not None
    return MessagePage(
        messages=found,
        reactions=reaction_counts(message_ids=[m.pk for m in found]),
        has_older=has_older,
        has_newer=has_newer,
        last_seq=member.conversation.last_seq,
    )


def reaction_counts(*, message_ids: list[int]) -> dict[int, dict[str, int]]:
    """``{message_id: {emoji: count}}`` for the messages that have reactions."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = (
        MessageReaction.objects.filter(message_id__in=message_ids)
        .values("message_id", "emoji")
        .annotate(n=Count("pk"))
        .order_by("message_id", "emoji")
    )
    for row in rows:
        counts[row["message_id"]][row["emoji"]] = row["n"]
    return dict(counts)


# ----------------------------------------------------------------------- sockets
def member_last_seq(*, conversation_id: Any, user_id: int) -> int:
    """The conversation's ``last_seq`` if ``user_id`` is a member (a subscribe's
    check and its ``conversation.subscribed`` value in one query), else ``NotFound``."""
    found = (
        ConversationMember.objects.filter(
            conversation_id=conversation_uuid(conversation_id), user_id=user_id
        )
        .values_list("conversation__last_seq", flat=True)
        .first()
    )
    if found is None:
        raise NotFound(NO_CONVERSATION)
    return found


@dataclass(slots=True)
class MemberState:
    """What a messenger socket keeps of one of its user's conversations."""

    unread: int
    muted: bool


def member_states(*, user_id: int) -> dict[str, MemberState]:
    """``{conversation_id: MemberState}`` for every conversation of ``user_id``, in
    one query (a socket's start: it counts unread from there on its own)."""
    rows = (
        ConversationMember.objects.filter(user_id=user_id)
        .annotate(unread=_unread())
        .values_list("conversation_id", "unread", "muted")
    )
    return {str(cid): MemberState(unread, muted) for cid, unread, muted in rows}


def presence_contacts(*, user_id: int, max_group: int) -> set[int]:
    """Who hears ``user_id`` come and go: everyone sharing a direct conversation or
    a group of at most ``max_group`` members with them. Bigger groups do not show
    presence (a room of thousands would make every connect a storm of notices)."""
    mine = ConversationMember.objects.filter(user_id=user_id).values("conversation_id")
    small = (
        Conversation.objects.filter(pk__in=mine)
        .annotate(size=Count("members"))
        .filter(size__lte=max_group)
        .values("pk")
    )
    return set(
        ConversationMember.objects.filter(conversation_id__in=small)
        .exclude(user_id=user_id)
        .values_list("user_id", flat=True)
        .distinct()
    )


def is_member(*, conversation_id: Any, user_id: int) -> bool:
    return ConversationMember.objects.filter(
        conversation_id=conversation_uuid(conversation_id), user_id=user_id
    ).exists()


def member_ids(*, conversation_id: Any) -> set[int]:
    return set(
        ConversationMember.objects.filter(
            conversation_id=conversation_uuid(conversation_id)
        ).values_list("user_id", flat=True)
    )


def users_sharing(*, user_id: int) -> set[int]:
    """Everyone else in any conversation of ``user_id`` (who hears their presence)."""
    mine = ConversationMember.objects.filter(user_id=user_id).values("conversation_id")
    return set(
        ConversationMember.objects.filter(conversation_id__in=mine)
        .exclude(user_id=user_id)
        .values_list("user_id", flat=True)
        .distinct()
    )


def messages_replay(
    *, conversation_id: Any, after: int, upto: int, batch: int | None = None
) -> Iterator[list[ConversationMessage]]:
    """Messages with ``after < seq <= upto`` in seq order, ``batch`` rows per query
    (memory stays bounded however far behind the socket is). The caller has checked
    membership (``member_last_seq``)."""
    batch = batch or knob("MESSENGER_REPLAY_BATCH")
    conversation_id = conversation_uuid(conversation_id)
    while after < upto:
        rows = list(
            ConversationMessage.objects.filter(
                conversation_id=conversation_id, seq__gt=after, seq__lte=upto
            ).order_by("seq")[:batch]
        )
        if not rows:
            return
        yield rows
        after = rows[-1].seq
