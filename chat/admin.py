from __future__ import annotations

from django.contrib import admin

from chat.models import Assistant, Conversation, Message


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "emoji", "route_alias", "tools", "owner", "is_active", "updated_at"]
    list_filter = ["is_active", "route_alias"]
    search_fields = ["name", "slug", "description", "owner__email"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["created_at", "role", "via", "status", "text", "model_name", "timings", "error"]
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "assistant", "use_knowledge", "updated_at"]
    list_filter = ["assistant"]
    search_fields = ["title", "user__email"]
    list_select_related = ["user", "assistant"]
    readonly_fields = ["user", "assistant", "created_at", "updated_at"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "conversation", "role", "via", "status", "model_name"]
    list_filter = ["role", "status", "via"]
    search_fields = ["text", "request_id", "conversation__user__email"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
