from __future__ import annotations

from django.contrib import admin

from arena.models import Battle, BattleAnswer


class BattleAnswerInline(admin.TabularInline):
    model = BattleAnswer
    extra = 0
    fields = ["side", "model_name", "status", "text", "ttft_ms", "tokens_per_s", "completion_tokens", "cost",
              "request_id", "error"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Battle)
class BattleAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "model_a", "model_b", "status", "vote", "created_at"]
    list_filter = ["status", "vote"]
    search_fields = ["prompt", "user__email", "model_a", "model_b"]
    readonly_fields = ["user", "prompt", "max_tokens", "model_a", "model_b", "status", "error", "vote", "voted_at",
                       "created_at", "updated_at"]
    inlines = [BattleAnswerInline]

    def has_add_permission(self, request) -> bool:
        return False
