"""Conversations, their members, messages, edit history and reactions.

Built beside the live-session room model rather than on it (docs/messenger.md says
why): a conversation is keyed by UUID, its members are users with a read position,
and its messages have senders, replies, edits and tombstones.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

MAX_TITLE = 200
MAX_CLIENT_ID = 64
MAX_EMOJI = 32


class Conversation(models.Model):
    """A direct (two users, unique per pair) or group conversation.

    ``last_seq`` is the seq of its newest message (0: none yet); a send raises it in
    the storing transaction, which is what makes seqs gapless.
    """

    class Kind(models.TextChoices):
        DIRECT = "direct", "direct"
        GROUP = "group", "group"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    title = models.CharField(max_length=MAX_TITLE, blank=True)
    # "<lower user id>:<higher user id>" for a direct conversation, NULL for a group:
    # the unique constraint makes a second direct conversation of a pair impossible,
    # even when both users open it at the same moment.
    direct_key = models.CharField(max_length=48, null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,  # the conversation outlives the account
        related_name="+",
    )
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["direct_key"], name="conversation_one_direct"
            ),
            models.CheckConstraint(
                condition=(Q(kind="direct") & Q(direct_key__isnull=False))
                | (Q(kind="group") & Q(direct_key__isnull=True)),
                name="conversation_direct_key_iff_direct",
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"{self.kind} {self.pk}"

    @property
    def is_direct(self) -> bool:
        return self.kind == self.Kind.DIRECT


class ConversationMember(models.Model):
    """A user in a conversation. Removal deletes the row: no row, no access.

    ``last_read_seq`` only ever grows (``read_mark`` updates it with a ``<`` guard).
    """

    class Role(models.TextChoices):
        OWNER = "owner", "owner"
        MEMBER = "member", "member"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="members"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversation_memberships",
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    muted = models.BooleanField(default=False)
    last_read_seq = models.PositiveBigIntegerField(default=0)
    last_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "user"], name="conversation_member_once"
            )
        ]
        indexes = [models.Index(fields=["user", "conversation"])]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.conversation_id} ({self.role})"

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER


class ConversationMessage(models.Model):
    """A stored message. ``seq`` is gapless per conversation; a delete leaves a
    tombstone (content cleared, ``deleted_at`` set) that keeps its seq."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveBigIntegerField()
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,  # history outlives the account
        related_name="conversation_messages",
    )
    content = models.TextField(blank=True)
    client_id = models.CharField(max_length=MAX_CLIENT_ID, null=True, blank=True)
    reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "seq"], name="conversation_message_seq"
            ),
            models.UniqueConstraint(
                fields=["conversation", "sender", "client_id"],
                condition=Q(client_id__isnull=False),
                name="conversation_message_client_id",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"#{self.seq}: {self.content[:40]}"
            if not self.deleted_at
            else (f"#{self.seq}: (deleted)")
        )

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class MessageRevision(models.Model):
    """The text a message had before one edit (its history, oldest first)."""

    message = models.ForeignKey(
        ConversationMessage, on_delete=models.CASCADE, related_name="revisions"
    )
    content = models.TextField()
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "replaced_at", "id"]

    def __str__(self) -> str:
        return f"{self.message_id} @ {self.replaced_at:%Y-%m-%d %H:%M}"


class MessageReaction(models.Model):
    """One user's reaction with one emoji to one message (at most one: unique)."""

    message = models.ForeignKey(
        ConversationMessage, on_delete=models.CASCADE, related_name="reactions"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    emoji = models.CharField(max_length=MAX_EMOJI)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="reaction_once_per_user"
            )
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"
