"""Blind comparisons: one prompt, two chat models picked at random, one vote."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from common.models import TimeStampedModel


class Battle(TimeStampedModel):
    """A prompt sent to two models shown as "Model A" and "Model B"; their names show once the user votes."""

    class Status(models.TextChoices):
        NEW = "new", "Not started"
        RUNNING = "running", "Answering"
        ANSWERED = "answered", "Answered"
        FAILED = "failed", "Failed"

    class Choice(models.TextChoices):
        A = "a", "Model A is better"
        B = "b", "Model B is better"
        TIE = "tie", "It's a tie"
        BOTH_BAD = "both_bad", "Both are bad"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="arena_battles")
    prompt = models.TextField()
    max_tokens = models.PositiveIntegerField()
    model_a = models.CharField(max_length=100)
    model_b = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    error = models.TextField(blank=True)
    vote = models.CharField(max_length=8, choices=Choice.choices, blank=True)
    voted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "created_at"]), models.Index(fields=["voted_at", "id"])]
        constraints = [models.CheckConstraint(condition=~models.Q(model_a=models.F("model_b")),
                                              name="arena_battle_two_models")]

    def __str__(self) -> str:
        return f"Battle {self.pk}: {self.model_a} vs {self.model_b}"


class BattleAnswer(models.Model):
    """One side's answer, with its speed as the page saw it and the request id of its ledger rows."""

    class Side(models.TextChoices):
        A = "a", "Model A"
        B = "b", "Model B"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        STREAMING = "streaming", "Answering"
        DONE = "done", "Done"
        INTERRUPTED = "interrupted", "Interrupted"
        FAILED = "failed", "Failed"

    battle = models.ForeignKey(Battle, on_delete=models.CASCADE, related_name="answers")
    side = models.CharField(max_length=1, choices=Side.choices)
    model_name = models.CharField(max_length=100)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=20, blank=True)
    # inference's request id: the ledger rows (inference.models.UsageRecord) are this id, or this id
    # and "-<attempt>" for a retried attempt.
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["battle", "side"]
        constraints = [models.UniqueConstraint(fields=["battle", "side"], name="arena_battleanswer_one_per_side")]

    def __str__(self) -> str:
        return f"Battle {self.battle_id} {self.side.upper()}: {self.model_name}"

    @property
    def finished(self) -> bool:
        return self.status not in (self.Status.PENDING, self.Status.STREAMING)
