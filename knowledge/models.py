from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from pgvector.django import HnswIndex, VectorField

from common.models import TimeStampedModel

EMBEDDING_DIMENSIONS = 384


class Collection(TimeStampedModel):
    """A set of documents owned by one user or one team and shared by explicit grants."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="collections"
    )
    owner_team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="collections"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Every signed-in user may read it (never write): the starter collections the seeded assistants
    # answer from. Only staff set it (collection_readable_by_all_set).
    readable_by_all = models.BooleanField(default=False, help_text="Every signed-in user may read it.")

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(owner_user__isnull=False, owner_team__isnull=True)
                | Q(owner_user__isnull=True, owner_team__isnull=False),
                name="knowledge_collection_one_owner",
            )
        ]

    def __str__(self) -> str:
        return self.name


class CollectionGrant(TimeStampedModel):
    """Read or write access to a collection for one user or every member of one team."""

    class Permission(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="collection_grants"
    )
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="collection_grants"
    )
    permission = models.CharField(max_length=8, choices=Permission.choices, default=Permission.READ)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["collection_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False),
                name="knowledge_grant_one_grantee",
            ),
            models.UniqueConstraint(fields=["collection", "user"], name="knowledge_grant_user_unique"),
            models.UniqueConstraint(fields=["collection", "team"], name="knowledge_grant_team_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_permission_display()} on {self.collection_id} for {self.user or self.team}"


class Document(TimeStampedModel):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        URL = "url", "URL"
        API = "api", "API"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.UPLOAD)
    source_url = models.URLField(max_length=2000, blank=True)
    file = models.FileField(upload_to="knowledge/%Y/%m/", blank=True, max_length=300)
    filename = models.CharField(max_length=300, blank=True)
    mime = models.CharField(max_length=120, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    # When the current ingest attempt claimed the row; a claim older than the task time limit
    # belongs to a worker that died, so another attempt may take it over.
    claimed_at = models.DateTimeField(null=True, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Dedup: the same bytes are stored once per collection.
            models.UniqueConstraint(
                fields=["collection", "sha256"], condition=~Q(sha256=""), name="knowledge_document_sha256_unique"
            )
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage of a document: its text, where it sits in the extracted text, and its vectors."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Denormalised from the document so the permission filter runs on the chunk row itself.
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    start_offset = models.PositiveIntegerField()
    end_offset = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField()
    # What the passage is about: the document's title when it was ingested (copied here because a
    # generated column can read only its own row) and the nearest heading above the passage. Both are
    # embedded with the text and weigh more than it in the keyword leg (A and B against D).
    title = models.CharField(max_length=300, blank=True, db_default="")
    heading = models.CharField(max_length=300, blank=True, db_default="")
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    search_vector = models.GeneratedField(
        expression=SearchVector("title", weight="A", config="english")
        + SearchVector("heading", weight="B", config="english")
        + SearchVector("text", weight="D", config="english"),
        output_field=SearchVectorField(), db_persist=True,
    )

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="knowledge_chunk_ordinal_unique")]
        indexes = [
            HnswIndex(
                name="knowledge_chunk_embedding_hnsw", fields=["embedding"], m=16, ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(name="knowledge_chunk_search_gin", fields=["search_vector"]),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"
