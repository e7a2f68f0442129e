from __future__ import annotations

import csv
from decimal import Decimal

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from common.display import duration_from_ms, duration_from_seconds, money_from_amount
from common.heartbeat import workers_alive
from inference.models import ModelSpec, ModelVariant, ReferencePrice, Route, RouteEntry, UsageRecord
from inference.selectors import reference_prices_default, savings_by_day


def _broadcast(request: HttpRequest, queryset: QuerySet[ModelSpec], action: str) -> None:
    from config.celery import app

    for spec in queryset:
        replies = app.control.broadcast("parley_model", arguments={"action": action, "name": spec.name},
                                        reply=True, timeout=1.0)
        accepted = [host for reply in replies for host, body in reply.items() if body.get("ok")]
        if accepted:
            messages.info(request, f"{action.capitalize()} {spec.name}: started on {', '.join(accepted)}. "
                          "The Live status column updates when it finishes.")
        else:
            messages.warning(request, f"{action.capitalize()} {spec.name}: no gpu worker answered. "
                             "Is a worker consuming the gpu queue running?")


class ModelVariantInline(admin.TabularInline):
    model = ModelVariant
    extra = 0
    fields = ["name", "backend", "quantization", "source", "sha256", "params", "description", "use"]
    readonly_fields = ["use"]

    @admin.display(description="")
    def use(self, variant: ModelVariant) -> str:
        if variant.pk is None:
            return ""
        if variant.spec.active_variant_id == variant.pk:
            return format_html("<strong>active</strong>")
        # formaction: a button inside the spec's form that posts to its own view, so the form is not saved.
        url = reverse("admin:inference_modelspec_variant_activate", args=[variant.spec_id, variant.pk])
        return format_html('<button type="submit" class="button" formaction="{}" formmethod="post">'
                           "Use this variant</button>", url)


@admin.register(ModelSpec)
class ModelSpecAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "backend", "quantization", "active_variant", "enabled", "access", "live_status"]
    list_filter = ["task", "backend", "enabled"]
    search_fields = ["name", "source", "description"]
    readonly_fields = ["created_at", "updated_at", "live_status", "active_variant", "install_state", "install_progress",
                       "install_message", "bench"]
    actions = ["load", "unload", "reload", "enable", "disable"]
    inlines = [ModelVariantInline]
    fieldsets = (
        (None, {"fields": ("name", "task", "backend", "active_variant", "enabled", "description", "live_status")}),
        ("Weights", {"fields": ("source", "sha256", "quantization", "params")}),
        ("Prices", {"fields": ("price_input_per_1k", "price_output_per_1k", "price_per_audio_second",
                               "price_per_1k_chars")}),
        ("Limits per user", {"fields": ("rpm_limit", "tokens_per_day_limit")}),
        ("Who may use it", {"fields": ("access_plans", "access_teams", "staff_only"),
                            "description": "Staff always may. With plans or teams listed, only callers on one of "
                                           "those plans or in one of those teams; with neither, everyone."}),
        ("Install", {"fields": ("install_state", "install_progress", "install_message", "bench")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )
    filter_horizontal = ["access_teams"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelSpec]:
        self._workers = workers_alive()  # one Redis read per page, not per row
        return super().get_queryset(request).select_related("active_variant").prefetch_related("access_teams")

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(require_POST(self.variant_activate_view))
        return [
            path("<int:spec_id>/variant/<int:variant_id>/activate/", view,
                 name="inference_modelspec_variant_activate"),
            *super().get_urls(),
        ]

    def variant_activate_view(self, request: HttpRequest, spec_id: int, variant_id: int) -> HttpResponse:
        """Use this variant: copy it into the spec, then ask the gpu workers to reload the model."""
        from inference.services import modelspec_variant_activate

        spec = get_object_or_404(ModelSpec, pk=spec_id)
        if not self.has_change_permission(request, spec):
            raise PermissionDenied
        variant = get_object_or_404(ModelVariant, pk=variant_id, spec=spec)
        modelspec_variant_activate(spec=spec, variant=variant)
        messages.success(request, f"{spec.name} now runs as {variant.name} ({variant.get_backend_display()}, "
                         f"{variant.quantization or 'default'}).")
        _broadcast(request, ModelSpec.objects.filter(pk=spec.pk), "reload")
        return HttpResponseRedirect(reverse("admin:inference_modelspec_change", args=[spec.pk]))

    @admin.display(description="Who may use it")
    def access(self, rule: ModelSpec) -> str:
        return _access_text(rule)

    @admin.display(description="Live status")
    def live_status(self, spec: ModelSpec) -> str:
        workers = getattr(self, "_workers", None)
        if workers is None:
            workers = workers_alive()
        rows = []
        for worker in workers:
            state = worker.get("models", {}).get(spec.name)
            if state:
                detail = state.get("error") or (f"{state.get('load_seconds', '')}s" if state["state"] == "loaded" else
                                                f"{int(float(state.get('progress', 0)) * 100)}%")
                rows.append((worker["hostname"], state["state"], worker.get("device", ""), detail))
        if not rows:
            return "not loaded"
        return format_html_join("<br>", "{}: <strong>{}</strong> on {} ({})", rows)

    @admin.action(description="Load on gpu workers")
    def load(self, request: HttpRequest, queryset: QuerySet[ModelSpec]) -> None:
        _broadcast(request, queryset, "load")

    @admin.action(description="Unload from gpu workers")
    def unload(self, request: HttpRequest, queryset: QuerySet[ModelSpec]) -> None:
        _broadcast(request, queryset, "unload")

    @admin.action(description="Reload on gpu workers")
    def reload(self, request: HttpRequest, queryset: QuerySet[ModelSpec]) -> None:
        _broadcast(request, queryset, "reload")

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[ModelSpec]) -> None:
        from inference.services import modelspecs_set_enabled

        modelspecs_set_enabled(names=list(queryset.values_list("name", flat=True)), enabled=True)

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[ModelSpec]) -> None:
        from inference.services import modelspecs_set_enabled

        modelspecs_set_enabled(names=list(queryset.values_list("name", flat=True)), enabled=False)


class RouteEntryInline(admin.TabularInline):
    model = RouteEntry
    extra = 1
    ordering = ["position"]
    autocomplete_fields = ["spec"]


def _access_text(rule: ModelSpec | Route) -> str:
    if rule.staff_only:
        return "staff only"
    parts = [f"plans: {', '.join(rule.access_plans)}"] if rule.access_plans else []
    teams = [team.name for team in rule.access_teams.all()]
    if teams:
        parts.append(f"teams: {', '.join(teams)}")
    return "; ".join(parts) or "everyone"


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["alias", "task", "chain", "access", "description"]
    list_filter = ["task"]
    search_fields = ["alias"]
    inlines = [RouteEntryInline]
    filter_horizontal = ["access_teams"]
    fieldsets = (
        (None, {"fields": ("alias", "task", "description")}),
        ("Who may use it", {"fields": ("access_plans", "access_teams", "staff_only"),
                            "description": "Staff always may. With plans or teams listed, only callers on one of "
                                           "those plans or in one of those teams; with neither, everyone."}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Route]:
        return super().get_queryset(request).prefetch_related("entries__spec", "access_teams")

    @admin.display(description="Who may use it")
    def access(self, route: Route) -> str:
        return _access_text(route)

    @admin.display(description="Fallback chain")
    def chain(self, route: Route) -> str:
        return " → ".join(entry.spec.name for entry in route.entries.all())


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "model_name", "route_alias", "task", "prompt_tokens", "completion_tokens",
                    "audio", "characters", "first_token", "duration", "cost_display", "outcome"]
    list_filter = ["task", "metering", "outcome", "model_name", "created_at"]
    search_fields = ["request_id", "user__email", "model_name"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    actions = ["export_csv"]
    change_list_template = "admin/inference/usagerecord/change_list.html"

    def get_urls(self):
        savings = path("savings/", self.admin_site.admin_view(self.savings_view), name="inference_usagerecord_savings")
        return [savings, *super().get_urls()]

    def savings_view(self, request: HttpRequest) -> HttpResponse:
        """Every user's savings by day: what the reference APIs would have charged, what running it here cost,
        and the difference, as a Chart.js chart and the same figures in a table."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = savings_by_day(days=30)
        chart = {
            "days": [row["day"].isoformat() for row in days],
            "reference_cost": [float(row["reference_cost"]) for row in days],
            "compute_cost": [float(row["compute_cost"]) for row in days],
            "saved": [float(row["saved"]) for row in days],
        }
        totals = {key: sum((row[key] for row in days), Decimal(0))
                  for key in ("reference_cost", "compute_cost", "saved")}
        context = {**self.admin_site.each_context(request), "title": "Savings against API prices, by day",
                   "rows": days, "chart": chart, "totals": totals, "requests": sum(row["requests"] for row in days),
                   "references": list(reference_prices_default().values()),
                   "compute_cost_per_hour": settings.PARLEY_COMPUTE_COST_PER_HOUR, "opts": self.model._meta}
        return render(request, "admin/inference/usagerecord/savings.html", context)

    @admin.display(description="Audio", ordering="audio_seconds")
    def audio(self, record: UsageRecord) -> str:
        return duration_from_seconds(record.audio_seconds) if record.audio_seconds else ""

    @admin.display(description="First token", ordering="ttft_ms")
    def first_token(self, record: UsageRecord) -> str:
        return duration_from_ms(record.ttft_ms)

    @admin.display(description="Duration", ordering="duration_ms")
    def duration(self, record: UsageRecord) -> str:
        return duration_from_ms(record.duration_ms)

    @admin.display(description="Cost", ordering="cost")
    def cost_display(self, record: UsageRecord) -> str:
        return money_from_amount(record.cost)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False

    @admin.action(description="Export selected as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[UsageRecord]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="parley-usage.csv"'
        fields = ["created_at", "request_id", "user", "api_key", "model_name", "route_alias", "task",
                  "prompt_tokens", "completion_tokens", "audio_seconds", "characters", "ttft_ms", "duration_ms",
                  "cost", "outcome", "error", "worker", "metering"]
        writer = csv.writer(response)
        writer.writerow(fields)
        for record in queryset.select_related("user", "api_key").order_by("created_at").iterator():
            writer.writerow([
                record.created_at.isoformat(), record.request_id, record.user.email,
                record.api_key.prefix if record.api_key else "", record.model_name, record.route_alias, record.task,
                record.prompt_tokens, record.completion_tokens, record.audio_seconds, record.characters,
                record.ttft_ms if record.ttft_ms is not None else "", round(record.duration_ms, 1), record.cost,
                record.outcome, record.error, record.worker, record.metering,
            ])
        return response


@admin.register(ReferencePrice)
class ReferencePriceAdmin(admin.ModelAdmin):
    """What hosted APIs charge, for the savings on the usage page and the staff savings chart."""

    list_display = ["name", "task", "is_default", "input_per_million", "output_per_million", "per_minute",
                    "per_million_characters", "as_of", "source_url"]
    list_filter = ["task", "is_default"]

