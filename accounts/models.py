from __future__ import annotations

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


class User(AbstractUser):
    """A person who signs in with their email address."""

    username = None
    first_name = None
    last_name = None
    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)

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
        return self.name or self.email.split("@")[0]


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
