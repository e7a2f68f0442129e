from __future__ import annotations

from django.contrib import admin

from knowledge.models import Chunk, Collection, CollectionGrant, Document


class GrantInline(admin.TabularInline):
    model = CollectionGrant
    extra = 0
    raw_id_fields = ["user", "team", "granted_by"]


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "owner_user", "owner_team", "readable_by_all", "created_at"]
    list_filter = ["readable_by_all"]
    search_fields = ["name", "owner_user__email", "owner_team__name"]
    raw_id_fields = ["owner_user", "owner_team", "created_by"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [GrantInline]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "collection", "status", "progress", "chunk_count", "size", "mime", "added_by",
                    "created_at"]
    list_filter = ["status", "source", "mime"]
    search_fields = ["title", "filename", "source_url", "sha256", "collection__name"]
    raw_id_fields = ["collection", "added_by"]
    readonly_fields = ["sha256", "size", "mime", "status", "progress", "error", "chunk_count", "claimed_at",
                       "created_at", "updated_at"]


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["document", "ordinal", "start_offset", "end_offset", "token_count"]
    search_fields = ["text"]
    raw_id_fields = ["document", "collection"]
    # The vectors are 384 floats and the tsvector is derived; neither is edited by hand.
    exclude = ["embedding"]
    readonly_fields = ["document", "collection", "ordinal", "text", "start_offset", "end_offset", "token_count"]

    def has_add_permission(self, request) -> bool:
        return False
