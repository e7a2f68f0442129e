from __future__ import annotations

import re

from django.conf import settings
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower

from common.models import TimeStampedModel


class UserManager(BaseUserManager):
    # Django's createsuperuser and allauth call these; services.user_create is Parley's path.
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        from accounts.services import user_create

        return user_create(email=email, password=password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        from accounts.services import user_create

        return user_create(email=email, password=password, is_staff=True, is_superuser=True, **extra)


def name_from_email(email: str) -> str:
    """A friendlier stand-in than the raw local part: "rosa.maria+test42@x" -> "Rosa Maria"."""
    local = email.split("@")[0].split("+")[0]
    words = [re.sub(r"\d+$", "", word) for word in re.split(r"[._\-]+", local)]
    words = [word for word in words if word and not word.isdigit()]
    return " ".join(word[:1].upper() + word[1:] for word in words) or "there"


class User(AbstractUser):
    """A person who signs in with their email address."""

    class AvatarKind(models.TextChoices):
        INITIALS = "initials", "My initials"
        IMAGE = "image", "A picture"

    class Digest(models.TextChoices):
        NEVER = "never", "Never"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    username = None
    first_name = None
    last_name = None
    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)
    # Profile. "Complete" means every one of these was chosen (accounts.selectors.profile_missing).
    avatar = models.ImageField(upload_to="avatars/", blank=True)
    avatar_kind = models.CharField(max_length=8, choices=AvatarKind.choices, blank=True)
    time_zone = models.CharField(max_length=64, blank=True, help_text="An IANA name, e.g. Europe/Paris.")
    email_digest = models.CharField(max_length=8, choices=Digest.choices, blank=True,
                                    help_text="Empty: the user has not chosen yet.")

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        ordering = ["email"]
        constraints = [models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.name or name_from_email(self.email)

    @property
    def initials(self) -> str:
        words = self.display_name.split()
        return "".join(word[0] for word in words[:2]).upper() or "?"


class Team(TimeStampedModel):
    """A group of users that owns resources together. Every user has one personal team."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    is_personal = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # At most one personal team per user: sign-up retries must not create a second.
            models.UniqueConstraint(
                fields=["created_by"], condition=models.Q(is_personal=True), name="accounts_one_personal_team"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Membership(TimeStampedModel):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        ordering = ["team__name", "user__email"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="accounts_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class ApiKey(TimeStampedModel):
    """A secret for the REST API and /v1. Only a hash is stored; the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The first characters of the key, shown in lists so users can tell keys apart.
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rpm_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty = user's limit"
    )
    tokens_per_day_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens per day (UTC); empty = user's limit"
    )

    class Meta:
        ordering = ["-created_at", "id"]
        verbose_name = "API key"  # not Django's "Api key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Invitation(TimeStampedModel):
    """An emailed, signed, single-use link to join a team. The row is also the mail's outbox entry."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="invitations_sent")
    # Part of the signed token; a re-send draws a new one, so only the newest link works.
    nonce = models.CharField(max_length=32)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the newest link was last mailed.")
    send_count = models.PositiveIntegerField(default=0)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="invitations_accepted")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One open invitation per address and team: a second invite is a re-send of the first.
            models.UniqueConstraint(
                "team", Lower("email"), condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="accounts_invitation_one_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.team}"

    def state_at(self, now) -> str:
        if self.accepted_at:
            return self.State.ACCEPTED
        if self.revoked_at:
            return self.State.REVOKED
        if self.expires_at <= now:
            return self.State.EXPIRED
        return self.State.PENDING

    @property
    def state(self) -> str:
        from django.utils import timezone

        return self.state_at(timezone.now())
