"""Onboarding: the tour (steps staff edit, each user's progress), badges and awards, and the
per-user milestones the staff funnel is computed from."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
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
    # Product analytics only (no tour step or badge reads them yet).
    VOICE_TURN = "voice_turn", "Finished a voice turn"
    ASSISTANT_USED = "assistant_used", "Used an assistant"
    GROUNDED_ANSWER = "grounded_answer", "Got an answer grounded in documents"
    S7_RUN = "s7_run", "Started an S-7 run"
    PURCHASE_STARTED = "purchase_started", "Started a purchase"
    PAID = "paid", "Paid"
    CANCELED = "canceled", "Canceled a purchase"
    INSTALLMENT_FAILED = "installment_failed", "An installment failed"


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


# --- Product analytics ---------------------------------------------------------------------
# First-party and consent-gated (docs/events.md lists every event; /privacy/ says the rest).
# `onboarding.services.analytics_event_record` is the only writer of AnalyticsEvent.


class ConsentChoice(models.TextChoices):
    NECESSARY = "necessary", "Necessary only"
    ANALYTICS = "analytics", "Analytics too"


class Consent(models.Model):
    """A signed-in user's current analytics choice (their profile setting); `ConsentRecord` logs each change."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE,
                                related_name="analytics_consent")
    choice = models.CharField(max_length=12, choices=ConsentChoice.choices)
    policy_version = models.CharField(max_length=20)
    decided_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user_id}: {self.choice} ({self.policy_version})"


class ConsentRecord(models.Model):
    """Every consent choice, with its time and policy version: the proof the law asks for.

    Kept apart from the events and not pruned with them. `subject` names who chose: `user:<pk>`
    for a signed-in user, else the random id in the visitor's consent cookie.
    """

    class Source(models.TextChoices):
        BANNER = "banner", "Consent banner"
        SETTINGS = "settings", "Privacy settings (footer link or account page)"
        SIGN_IN = "sign_in", "Adopted from the browser's choice at sign-in"
        SIGNAL = "signal", "Do Not Track or Global Privacy Control"

    subject = models.CharField(max_length=64, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    choice = models.CharField(max_length=12, choices=ConsentChoice.choices)
    source = models.CharField(max_length=10, choices=Source.choices)
    policy_version = models.CharField(max_length=20)
    signal = models.CharField(max_length=8, blank=True, help_text="dnt or gpc when the browser sent one.")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.subject}: {self.choice} via {self.source}"


class AnalyticsEvent(models.Model):
    """One page view, UI event or domain event. No IP address, no cookie id: `visitor` is a hash of
    IP + user agent with a salt that rotates daily and is never stored, so a visitor can be counted
    within a day and never followed across days."""

    class Source(models.TextChoices):
        BROWSER = "browser", "Browser"
        SERVER = "server", "Server"

    class Device(models.TextChoices):
        DESKTOP = "desktop", "Desktop"
        MOBILE = "mobile", "Mobile"
        TABLET = "tablet", "Tablet"
        BOT = "bot", "Bot"

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField()
    name = models.CharField(max_length=64)
    source = models.CharField(max_length=8, choices=Source.choices)
    path = models.CharField(max_length=300, blank=True)
    referrer_host = models.CharField(max_length=255, blank=True)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    utm_term = models.CharField(max_length=100, blank=True)
    utm_content = models.CharField(max_length=100, blank=True)
    device = models.CharField(max_length=8, choices=Device.choices, blank=True)
    country = models.CharField(max_length=2, blank=True)
    visitor = models.CharField(max_length=16, blank=True)
    # Indexed by the partial indexes below, not Django's default FK index: most rows have no user.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", db_index=False)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", db_index=False)
    plan = models.CharField(max_length=40, blank=True, help_text="The user's plan when it happened.")
    props = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # Rows arrive in time order, so a BRIN index on `at` stays tiny and serves every range scan.
            BrinIndex(fields=["at"], name="onboarding_event_at_brin", pages_per_range=32),
            models.Index(fields=["name", "at"], name="onboarding_event_name_at"),
            models.Index(fields=["user", "at"], name="onboarding_event_user_at",
                         condition=models.Q(user__isnull=False)),
            models.Index(fields=["team"], name="onboarding_event_team",
                         condition=models.Q(team__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M}"


class TrafficHour(models.Model):
    """Requests and server errors per hour, flushed from Redis counters by the hourly alert task."""

    hour = models.DateTimeField(primary_key=True)
    requests = models.PositiveIntegerField(default=0)
    server_errors = models.PositiveIntegerField(default=0)
    failed_replies = models.PositiveIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-hour"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00}: {self.requests} requests, {self.server_errors} 5xx"


class AnalyticsAlert(models.Model):
    """A traffic spike or error-rate increase in one hour; unique per kind and hour, so it mails once."""

    class Kind(models.TextChoices):
        TRAFFIC_SPIKE = "traffic_spike", "Traffic spike"
        ERROR_RATE = "error_rate", "Error rate increase"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    hour = models.DateTimeField(help_text="Start of the hour that tripped it.")
    observed = models.FloatField()
    baseline = models.FloatField(help_text="The same hour over the previous 4 weeks (mean).")
    threshold = models.FloatField()
    detail = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    mailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-hour", "kind"]
        constraints = [models.UniqueConstraint(fields=["kind", "hour"], name="onboarding_alert_kind_hour")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.hour:%Y-%m-%d %H:00}"
