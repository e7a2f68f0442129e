"""Onboarding: the tour (steps staff edit, each user's progress), badges and awards, and the
per-user milestones the staff funnel is computed from."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from common.models import TimeStampedModel


class Event(models.TextChoices):
    """Domain events other apps report through `onboarding.services.event_record`.

    A tour step completes on its `action` event; badge rules and milestones read the same events.
    """

    SIGNED_UP = "signed_up", "Signed up"
    EMAIL_VERIFIED = "email_verified", "Verified the email address"
    CONVERSATION_STARTED = "conversation_started", "Started a conversation"
    MESSAGE_SENT = "message_sent", "Sent a chat message"
    REPLY_COMPLETED = "reply_completed", "Got a complete reply"
    DOCUMENT_ADDED = "document_added", "Added a document"
    DOCUMENT_READY = "document_ready", "A document finished ingesting"
    CITATION_OPENED = "citation_opened", "Opened a citation"
    API_KEY_CREATED = "api_key_created", "Created an API key"
    API_KEY_USED = "api_key_used", "Used an API key"
    PROFILE_COMPLETED = "profile_completed", "Completed the profile"
    INVITATION_SENT = "invitation_sent", "Invited someone to a team"
    INVITEE_JOINED = "invitee_joined", "Someone they invited joined"
    EVALUATION_VIEWED = "evaluation_viewed", "Opened the S-7 evaluation"
    S7_CHALLENGE_FINISHED = "s7_challenge_finished", "Finished an S-7 challenge"


class TourStep(TimeStampedModel):
    """One stop of the tour. Staff edit these; the tour shows the enabled ones in `order`."""

    slug = models.SlugField(max_length=40, unique=True)
    order = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=80)
    text = models.TextField(max_length=600)
    target_url = models.CharField(
        max_length=200, blank=True,
        help_text="Path of the page where the step is shown, e.g. /app/knowledge/. Ignored when a setting names it.")
    target_url_setting = models.CharField(
        max_length=80, blank=True,
        help_text="Name of a setting holding the page's path instead (e.g. PARLEY_TOUR_EVALUATION_URL). While that "
                  "setting is empty the step is left out of the tour.")
    target_element = models.CharField(
        max_length=200, help_text="CSS selector of the element to highlight, one that only its page has (a "
                                  "data-tour attribute is the surest); a list (a, b) uses the first found.")
    action = models.CharField(
        max_length=40, choices=Event.choices, blank=True,
        help_text="The event that completes the step. Empty: the step completes when the user presses Next.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.order}. {self.title}"

    @property
    def url(self) -> str:
        if self.target_url_setting:
            return str(getattr(settings, self.target_url_setting, "") or "")
        return self.target_url


class Journey(models.Model):
    """One user's way through onboarding: the tour's state and the first time of each milestone.

    First-time columns never move once set (replays don't touch them), so the funnel reads them
    with plain SQL aggregates. `completed_steps` is the current run's, and resets on replay.
    """

    class State(models.TextChoices):
        NEW = "new", "Not started"
        ACTIVE = "active", "In progress"
        PAUSED = "paused", "Paused"
        SKIPPED = "skipped", "Skipped"
        FINISHED = "finished", "Finished"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE,
                                related_name="journey")
    signed_up_at = models.DateTimeField(db_index=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    first_chat_at = models.DateTimeField(null=True, blank=True, help_text="The first complete reply.")
    tour_state = models.CharField(max_length=10, choices=State.choices, default=State.NEW)
    current_step = models.ForeignKey(TourStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    completed_steps = models.JSONField(default=list, blank=True, help_text="Slugs completed in this run.")
    run = models.PositiveIntegerField(default=0, help_text="1 for the first tour, +1 per replay.")
    tour_started_at = models.DateTimeField(null=True, blank=True)
    tour_finished_at = models.DateTimeField(null=True, blank=True)
    run_started_at = models.DateTimeField(null=True, blank=True)
    run_finished_at = models.DateTimeField(null=True, blank=True)
    skipped_at = models.DateTimeField(null=True, blank=True)
    # Latest use of each product area, for the Power User badge (all four within its threshold).
    last_chat_at = models.DateTimeField(null=True, blank=True)
    last_voice_at = models.DateTimeField(null=True, blank=True)
    last_knowledge_at = models.DateTimeField(null=True, blank=True)
    last_api_key_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-signed_up_at", "user_id"]

    def __str__(self) -> str:
        return f"Onboarding of user {self.user_id}"


class StepProgress(models.Model):
    """The first time a user reached (was shown) and completed each step, for the funnel."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    step = models.ForeignKey(TourStep, on_delete=models.CASCADE, related_name="progress")
    reached_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user_id", "step__order"]
        constraints = [models.UniqueConstraint(fields=["user", "step"], name="onboarding_stepprogress_unique")]
        indexes = [models.Index(fields=["step", "reached_at"])]

    def __str__(self) -> str:
        return f"user {self.user_id} at {self.step_id}"


class Badge(models.Model):
    """A badge definition. The rule is code (onboarding.services.badges); staff tune thresholds."""

    class Rule(models.TextChoices):
        FIRST_CHAT = "first_chat", "Complete replies received"
        S7_CHALLENGER = "s7_challenger", "S-7 challenges finished"
        KNOWLEDGE_EXPLORER = "knowledge_explorer", "A citation opened, or this many ready documents"
        POWER_USER = "power_user", "Chat, voice, knowledge and an API key all used within this many days"
        COMMUNITY_BUILDER = "community_builder", "Invited people who joined"

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=60)
    description = models.CharField(max_length=200)
    icon = models.CharField(max_length=30, help_text="Name of the icon in templates/onboarding/_badge_icon.html.")
    rule = models.CharField(max_length=30, choices=Rule.choices, unique=True)
    threshold = models.PositiveIntegerField(default=1)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return self.name


class Award(models.Model):
    """A badge earned. Unique per user and badge: concurrent events insert once, the rest conflict."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="awards")
    badge = models.ForeignKey(Badge, on_delete=models.CASCADE, related_name="awards")
    awarded_at = models.DateTimeField(auto_now_add=True)
    event = models.CharField(max_length=40, choices=Event.choices, help_text="The event that earned it.")
    event_data = models.JSONField(default=dict, blank=True)
    # Set once a page showed the toast: an award earned during a page change is shown on the next page.
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-awarded_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "badge"], name="onboarding_award_once")]

    def __str__(self) -> str:
        return f"{self.badge} for user {self.user_id}"
