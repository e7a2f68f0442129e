from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from common.plans import plan_of
from inference.selectors import savings_of_user, usage_records_of_user, usage_summary_of_user


@login_required
def usage_page(request: HttpRequest) -> HttpResponse:
    summary = usage_summary_of_user(user=request.user, days=30)
    totals = {
        "requests": sum(row["requests"] for row in summary),
        "tokens": sum((row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0) for row in summary),
        "audio_seconds": sum(row["audio_seconds"] or 0 for row in summary),
        "characters": sum(row["characters"] or 0 for row in summary),
        "cost": sum((row["cost"] or Decimal(0) for row in summary), Decimal(0)),
    }
    return render(request, "inference/usage.html", {
        "summary": summary, "totals": totals,
        "recent": usage_records_of_user(user=request.user, metered_only=True)[:20],
        "savings": savings_of_user(user=request.user, days=30), "plan": plan_of(request.user),
    })
