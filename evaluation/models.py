"""S-7 runs, their per-item results, and the items users write for themselves or their team."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from common.models import TimeStampedModel


class EvalItem(TimeStampedModel):
    """A user's own item, in a personal set (owner) or a team's (team): graded like S-7's (evaluation.grading)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="eval_items")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="eval_items")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    skill = models.CharField(max_length=16)
    title = models.CharField(max_length=120, blank=True)
    spec = models.JSONField(help_text="The fields of the skill's S-7 items (evaluation/s7/<skill>.json), checked.")

    class Meta:
        ordering = ["skill", "id"]
        constraints = [models.CheckConstraint(
            condition=(Q(owner__isnull=False, team__isnull=True) | Q(owner__isnull=True, team__isnull=False)),
            name="evaluation_evalitem_one_set")]

    def __str__(self) -> str:
        return self.title or f"{self.skill} item {self.pk}"

    @property
    def key(self) -> str:
        return f"user:{self.pk}"


class EvalRun(TimeStampedModel):
    """One model or route measured over S-7 (or a user's set): scores, speed, memory and cost."""

    class Kind(models.TextChoices):
        FULL = "full", "Full S-7"
        CHALLENGE = "challenge", "S-7 challenge (7 items)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        S7 = "s7", "S-7"
        PERSONAL = "personal", "Personal items"
        TEAM = "team", "Team items"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="eval_runs")
    model = models.CharField(max_length=100, help_text="The model or route asked, as a client names it.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FULL)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.S7)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    skills = models.JSONField(default=list)
    item_keys = models.JSONField(default=list, help_text="The items to ask, in order, fixed when the run starts.")
    judge_model = models.CharField(max_length=100, blank=True,
                                   help_text="Optional: a model that adds a rubric score per item, labelled judge.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    # Claimed by a task until then; a task that died mid-run loses the claim and another picks the run up.
    claimed_until = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    items_done = models.PositiveIntegerField(default=0)
    items_total = models.PositiveIntegerField(default=0)
    # Results, written once when the run finishes.
    scores = models.JSONField(default=dict, blank=True,
                              help_text="Per skill: passed, n, score, ci_low, ci_high (Wilson 95%).")
    score = models.FloatField(null=True, blank=True)
    score_ci_low = models.FloatField(null=True, blank=True)
    score_ci_high = models.FloatField(null=True, blank=True)
    judge_score = models.FloatField(null=True, blank=True)
    ttft_p50_ms = models.FloatField(null=True, blank=True,
                                    help_text="Time to the first token as the worker measured it, median of the items.")
    ttft_p95_ms = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True,
                                     help_text="Decode: tokens after the first over the time they took, all items.")
    peak_memory_mb = models.FloatField(
        null=True, blank=True, help_text="Largest resident memory seen of the gpu worker holding the model, sampled "
        "after each item: the worker and its children (llama-server) on this host, else its heartbeat's rss_mb.")
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0),
                               help_text="The usage ledger's cost of every item's request (judge calls excluded).")
    answered_by = models.JSONField(default=list, blank=True, help_text="The models that answered (a route's).")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "status", "-finished_at"])]

    def __str__(self) -> str:
        return f"S-7 {self.kind} of {self.model} ({self.status})"

    @property
    def progress(self) -> float:
        return self.items_done / self.items_total if self.items_total else 0.0


class EvalResult(models.Model):
    """One item of a run: what was asked, the answer, its grade and why, and how fast it came."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    position = models.PositiveIntegerField()
    item_key = models.CharField(max_length=40)
    skill = models.CharField(max_length=16)
    prompt = models.TextField()
    answer = models.TextField(blank=True)
    passed = models.BooleanField(default=False)
    detail = models.CharField(max_length=500, blank=True)
    judge_score = models.FloatField(null=True, blank=True, help_text="0–1 rubric score from the judge model.")
    error = models.CharField(max_length=500, blank=True, help_text="Why no answer came (the item then fails).")
    request_id = models.CharField(max_length=64, blank=True)
    spec = models.CharField(max_length=100, blank=True, help_text="The model that answered.")
    ttft_ms = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0),
                               help_text="From the usage ledger: every attempt of this item's request.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "item_key"], name="evaluation_evalresult_once")]

    def __str__(self) -> str:
        return f"{self.item_key}: {'pass' if self.passed else 'fail'}"
