"""Staff read S-7 runs and their items here; runs are started and written only through evaluation.services."""

from __future__ import annotations

from django.contrib import admin

from evaluation.models import EvalItem, EvalResult, EvalRun


class EvalResultInline(admin.TabularInline):
    model = EvalResult
    extra = 0
    fields = ["position", "item_key", "skill", "passed", "detail", "answer", "ttft_ms", "tokens_per_s",
              "completion_tokens", "judge_score", "error"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ["id", "model", "kind", "source", "user", "status", "items_done", "items_total", "score",
                    "ttft_p50_ms", "tokens_per_s", "cost", "created_at"]
    list_filter = ["status", "kind", "source", "model"]
    search_fields = ["model", "user__email"]
    list_select_related = ["user"]
    inlines = [EvalResultInline]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(EvalItem)
class EvalItemAdmin(admin.ModelAdmin):
    list_display = ["id", "skill", "title", "owner", "team", "created_by", "created_at"]
    list_filter = ["skill"]
    search_fields = ["title", "owner__email", "team__name"]
    list_select_related = ["owner", "team", "created_by"]
    readonly_fields = ["owner", "team", "created_by", "skill", "spec", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False
