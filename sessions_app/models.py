"""Rooms (live sessions and conversations), their participants, messages and votes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from sessions_app.codes import code_generate

MAX_CONTENT = 2000  # characters of a chat message or question (docs/protocol.md §5)
MAX_NICKNAME = 40
MAX_TITLE = 200
MAX_CLIENT_ID = 64


class Session(models.Model):
    """One room. ``last_seq`` is the seq of its newest stored message (0: none yet)."""

    class Kind(models.TextChoices):
        LIVE = "live", "live session"
        CONVERSATION = "conversation", "conversation"

    class Status(models.TextChoices):
        OPEN = "open", "open"
        CLOSED = "closed", "closed"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LIVE)
    code = models.CharField(max_length=16, unique=True, default=code_generate)
    title = models.CharField(max_length=MAX_TITLE)
    host = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,  # history outlives the account
        related_name="hosted_sessions",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    moderated = models.BooleanField(
        default=False, help_text="Questions are shown to the host only until approved."
    )
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["host", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.code} · {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class Participant(models.Model):
    """Someone in a session: a signed-in user (one row per session) or a guest."""

    class Role(models.TextChoices):
        HOST = "host", "host"
        MEMBER = "member", "member"
        GUEST = "guest", "guest"

    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="participants"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="session_participations",
    )
    nickname = models.CharField(max_length=MAX_NICKNAME)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.GUEST)
    joined_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "user"],
                condition=Q(user__isnull=False),
                name="participant_one_row_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.nickname} ({self.role})"

    @property
    def is_host(self) -> bool:
        return self.role == self.Role.HOST


class Message(models.Model):
    """A stored chat message, question or system note.

    ``seq`` is gapless per session and assigned in the transaction that stores the
    row; a question waiting for a moderator's approval has none yet (``approved`` is
    false), so seqs stay gapless for everyone who cannot see it.
    """

    class Kind(models.TextChoices):
        CHAT = "chat", "chat"
        QUESTION = "question", "question"
        SYSTEM = "system", "system"

    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveBigIntegerField(null=True, blank=True)
    participant = models.ForeignKey(
        Participant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    nickname = models.CharField(max_length=MAX_NICKNAME, blank=True)  # as sent
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CHAT)
    content = models.TextField()
    client_id = models.CharField(max_length=MAX_CLIENT_ID, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    hidden = models.BooleanField(default=False)
    answered = models.BooleanField(default=False)
    approved = models.BooleanField(default=True)
    upvotes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["session", "seq", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "seq"],
                condition=Q(seq__isnull=False),
                name="message_unique_seq",
            ),
            models.UniqueConstraint(
                fields=["session", "participant", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_unique_client_id",
            ),
        ]
        indexes = [
            models.Index(
                fields=["session", "approved"],
                condition=Q(approved=False),
                name="message_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}: {self.content[:40]}"


class QuestionVote(models.Model):
    """One participant's upvote of one question (at most one: unique)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="votes")
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="votes"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "participant"], name="vote_once_per_participant"
            )
        ]


# The messenger's models live in their own package; imported here so Django finds them.
from sessions_app.messenger.models import (  # noqa: E402, F401
    Conversation,
    ConversationMember,
    ConversationMessage,
    MessageReaction,
    MessageRevision,
)
