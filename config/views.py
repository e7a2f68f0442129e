from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def landing(request: HttpRequest) -> HttpResponse:
    from billing.selectors import pricing_table
    from inference.selectors import chat_routes_for_plan

    plans = pricing_table()
    for row in plans:
        row["routes"] = chat_routes_for_plan(plan=row["plan"].slug)
    return render(request, "landing.html", {"pricing": plans})
