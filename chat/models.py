from __future__ import annotations

from django.conf import settings
from django.db import models

from common.models import TimeStampedModel


class Assistant(TimeStampedModel):
    """A persona: a system prompt and a model route. Staff ones (no owner) are for everyone."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="assistants", help_text="Empty: everyone may use it.")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.CharField(max_length=300, blank=True)
    emoji = models.CharField(max_length=8, blank=True, default="💬")
    system_prompt = models.TextField()
    route_alias = models.CharField(max_length=100, default="chat-default",
                                   help_text="A route alias or model name from admin → Models / Routes.")
    temperature = models.FloatField(default=0.5)
    max_tokens = models.PositiveIntegerField(default=512)
    # The knowledge collections (ids) its conversations answer from unless the user picks others; empty: none
    # by default (the user turns knowledge on and picks in the composer). Ids, not a many-to-many: each turn
    # keeps only those the user may read (inside the search's SQL), so a deleted or unshared collection is
    # simply skipped, as in Conversation.knowledge_collections, which copies this list.
    knowledge_collections = models.JSONField(null=True, blank=True, default=None,
                                             help_text="Collection ids new conversations use by default.")
    # Names of the built-in tools (chat.tools) its replies may call, checked against the registry on save.
    tools = models.JSONField(default=list, blank=True,
                             help_text="Built-in tools it may call: knowledge_search, webhook_notify, send_email.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Admin edits: the tools must be in the registry."""
        from django.core.exceptions import ValidationError

        from chat.tools import tools_check
        from common.errors import ApplicationError

        try:
            self.tools = tools_check(self.tools)
        except ApplicationError as exc:
            raise ValidationError({"tools": exc.message})
        ids = self.knowledge_collections
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, int) for i in ids)):
            raise ValidationError({"knowledge_collections": "A list of collection ids, like [3, 7], or null."})


class Conversation(TimeStampedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    assistant = models.ForeignKey(Assistant, on_delete=models.PROTECT, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    use_knowledge = models.BooleanField(default=False)
    # Which collections knowledge answers from: null is every collection the user may read, a list those ids
    # (still only those the user may read, checked at each turn).
    knowledge_collections = models.JSONField(null=True, blank=True, default=None)
    # The model or route the user picked for this conversation; empty = the assistant's route.
    model = models.CharField(max_length=100, blank=True)
    # Where the title came from: the first words (set with the first message), the model (after the first
    # reply), its fallback (the first words, when the model was refused or failed: not tried again), or the
    # user (a rename, which the model never overwrites). "titling": the model is on it.
    title_source = models.CharField(max_length=12, blank=True, choices=[
        ("first_words", "First words"), ("titling", "Being titled"), ("model", "Model"),
        ("fallback", "First words (the model could not)"), ("user", "User")])
    # Messages form a tree (a regenerated reply or an edited message is a sibling); the page shows, and the
    # next turn continues, the path from the root to this message. Empty: a straight line in creation order.
    current_leaf = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["user", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming", "Streaming"
        DONE = "done", "Done"
        INTERRUPTED = "interrupted", "Interrupted"
        FAILED = "failed", "Failed"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # The message this one follows: a reply's user message, a user message's previous reply. Alternatives
    # (regenerated replies, edited messages) share their parent.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DONE)
    via = models.CharField(max_length=8, default="text", help_text="text or voice")
    model_name = models.CharField(max_length=100, blank=True)
    # Who answered and why, e.g. "Answered by SmolLM2 135M because Qwen2.5-Coder 0.5B failed to load".
    model_note = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    citations = models.JSONField(default=list, blank=True)
    # How the prompt was built: turns included, the ids summarized and dropped for the token budget, and the
    # summary itself (chat.memory), which later turns reuse.
    context = models.JSONField(default=dict, blank=True)
    # The built-in tools the reply called (chat.tools), in order: name, arguments, summary ("used
    # knowledge_search ('notice period') → 3 passages"), ok, and what the model was given back.
    tool_steps = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"
