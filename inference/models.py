from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from common.models import TimeStampedModel


class ModelSpec(TimeStampedModel):
    """A model Parley can serve: where its weights come from, how to run it, what it costs."""

    class Task(models.TextChoices):
        CHAT = "chat", "Chat"
        STT = "stt", "Speech to text"
        TTS = "tts", "Text to speech"
        EMBED = "embed", "Embeddings"

    class Backend(models.TextChoices):
        CTRANSLATE2 = "ctranslate2", "CTranslate2"
        TRANSFORMERS = "transformers", "Transformers"
        FASTER_WHISPER = "faster_whisper", "faster-whisper"
        PIPER = "piper", "Piper"
        SENTENCE_TRANSFORMERS = "sentence_transformers", "sentence-transformers"
        OPENAI_UPSTREAM = "openai_upstream", "OpenAI-compatible upstream"
        LLAMA_CPP = "llama_cpp", "llama.cpp (llama-server)"

    name = models.SlugField(max_length=100, unique=True, help_text="The id clients pass as `model`.")
    task = models.CharField(max_length=8, choices=Task.choices)
    backend = models.CharField(max_length=32, choices=Backend.choices)
    source = models.CharField(
        max_length=500,
        help_text="package:<bundled name>, an absolute path, s3://… or https://… (fetched into var/models), "
        "or for openai_upstream the upstream model name.",
    )
    sha256 = models.CharField(max_length=64, blank=True, help_text="Checked before loading; empty = not checked.")
    quantization = models.CharField(max_length=16, blank=True, default="int8")
    params = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    price_input_per_1k = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    price_output_per_1k = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    price_per_audio_second = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    price_per_1k_chars = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Per user, requests per minute.")
    tokens_per_day_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Per user, tokens per day.")
    # Who may use it (inference.access): staff always; with `staff_only`, nobody else; with plans or teams
    # listed, a caller on one of those plans or in one of those teams; with neither, everyone.
    access_plans = models.JSONField(default=list, blank=True,
                                    help_text='Plan slugs that include it, e.g. ["pro"]; empty = every plan.')
    access_teams = models.ManyToManyField("accounts.Team", blank=True, related_name="+",
                                          help_text="Teams whose members may use it whatever their plan.")
    staff_only = models.BooleanField(default=False)
    # Preparing it in the background (inference.tasks.model_install): what the model picker shows while a
    # route falls back past it. "ready" for a model whose files are in place.
    install_state = models.CharField(max_length=12, default="ready", choices=[
        ("ready", "Ready"), ("installing", "Installing"), ("failed", "Failed"), ("skipped", "Skipped")])
    install_progress = models.FloatField(default=1.0)
    install_message = models.CharField(max_length=300, blank=True)
    # The latest bench figures for this model on this deployment (bench_inference writes them).
    bench = models.JSONField(default=dict, blank=True, editable=False)
    # The variant whose backend/source/sha256/quantization the fields above hold (set by
    # modelspec_variant_activate); null for a spec without variants.
    active_variant = models.ForeignKey(
        "ModelVariant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
    )

    class Meta:
        ordering = ["task", "name"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.name

    @property
    def context_length(self) -> int:
        return int(self.params.get("context_length", 2048))

    @property
    def is_upstream(self) -> bool:
        return self.backend == self.Backend.OPENAI_UPSTREAM


class ModelVariant(TimeStampedModel):
    """Another way to run the same model (an engine and quantization); activating one copies it into its spec."""

    spec = models.ForeignKey(ModelSpec, on_delete=models.CASCADE, related_name="variants")
    name = models.SlugField(max_length=64, help_text="e.g. gguf-q4_k_m, ct2-int8, ct2-int8_float16.")
    backend = models.CharField(max_length=32, choices=ModelSpec.Backend.choices)
    quantization = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=500, help_text="As ModelSpec.source; package:<name>:gguf for the GGUF.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="Checked before loading; empty = not checked.")
    params = models.JSONField(default=dict, blank=True, help_text="Merged over the spec's params when active.")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["spec", "name"]
        constraints = [models.UniqueConstraint(fields=["spec", "name"], name="inference_modelvariant_unique")]

    def __str__(self) -> str:
        return f"{self.spec.name}/{self.name}"


class Route(TimeStampedModel):
    """An alias clients can name instead of a model, served by the first healthy entry."""

    alias = models.SlugField(max_length=100, unique=True)
    task = models.CharField(max_length=8, choices=ModelSpec.Task.choices)
    description = models.CharField(max_length=200, blank=True)
    # Who may use it (inference.access): staff always; with `staff_only`, nobody else; with plans or teams
    # listed, a caller on one of those plans or in one of those teams; with neither, everyone.
    access_plans = models.JSONField(default=list, blank=True,
                                    help_text='Plan slugs that include it, e.g. ["pro"]; empty = every plan.')
    access_teams = models.ManyToManyField("accounts.Team", blank=True, related_name="+",
                                          help_text="Teams whose members may use it whatever their plan.")
    staff_only = models.BooleanField(default=False)

    class Meta:
        ordering = ["task", "alias"]

    def __str__(self) -> str:
        return self.alias


class RouteEntry(models.Model):
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="entries")
    spec = models.ForeignKey(ModelSpec, on_delete=models.CASCADE, related_name="route_entries")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["route", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["route", "spec"], name="inference_routeentry_unique")]
        verbose_name_plural = "fallback chain"

    def __str__(self) -> str:
        return f"{self.route} #{self.position}: {self.spec}"


class UsageRecord(models.Model):
    """One served (or failed) request: what it used, how fast it was, what it cost."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        CANCELED = "canceled", "Canceled"
        ERROR = "error", "Error"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    request_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    spec = models.ForeignKey(ModelSpec, null=True, on_delete=models.SET_NULL, related_name="usage_records")
    model_name = models.CharField(max_length=100)
    route_alias = models.CharField(max_length=100, blank=True)
    task = models.CharField(max_length=8, choices=ModelSpec.Task.choices)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    audio_seconds = models.FloatField(default=0)
    characters = models.PositiveIntegerField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    metering = models.CharField(
        max_length=12, blank=True,
        help_text="How the plan counted it (inference.serving.METERING): a request of its own (chat, embed, stt, "
                  "tts, search), part of one (lookup, summary, title, tool_step, fallback) or nothing (preview, "
                  "ingest). Empty on rows from before it was recorded.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "created_at"]), models.Index(fields=["api_key", "created_at"])]

    def __str__(self) -> str:
        return f"{self.model_name} for {self.user_id} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def part_of_a_request(self) -> bool:
        """Counted with the request that needed it (a chat turn's query embedding, summary, title or tool step):
        its tokens count, it is not a request of its own."""
        from inference.serving import METERING

        meter = METERING.get(self.metering)
        return bool(meter) and not meter.get("requests", False)


class ReferencePrice(TimeStampedModel):
    """What a well-known API charges for the same work, to show users what running it here saved. Staff keep
    these current in admin; each carries where it came from and when. One default per task is compared."""

    task = models.CharField(max_length=8, choices=ModelSpec.Task.choices)
    name = models.CharField(max_length=120, help_text='e.g. "OpenAI gpt-4o-mini".')
    input_per_million = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0),
                                            help_text="USD per million input tokens (chat, embeddings).")
    output_per_million = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0),
                                             help_text="USD per million output tokens (chat).")
    per_minute = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0),
                                     help_text="USD per minute of audio (speech to text).")
    per_million_characters = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0),
                                                 help_text="USD per million characters (text to speech).")
    source_url = models.URLField(max_length=300)
    as_of = models.DateField(help_text="When the source gave this price.")
    is_default = models.BooleanField(default=False, help_text="The one usage is compared against for its task.")

    class Meta:
        ordering = ["task", "-is_default", "name"]
        constraints = [models.UniqueConstraint(fields=["task"], condition=models.Q(is_default=True),
                                               name="inference_referenceprice_one_default_per_task")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_task_display()})"

