"""The admin index: dj-stripe's tables under one "Stripe (advanced)" heading, one "API keys", the favicon, and
list columns that read as money and durations."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib import admin

from accounts.tests.factories import staff_login, user_make
from config.admin_site import STRIPE_ON_INDEX, STRIPE_SECTION
from inference.models import UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    staff_login(client, user_make(is_staff=True, is_superuser=True))
    return client


def _section(body: str, caption: str) -> str:
    """The HTML of one app's table on the index, from its caption to the table's end."""
    start = body.index(caption)
    return body[start:body.index("</table>", start)]


def test_the_index_groups_stripe_under_one_section_with_a_link_to_every_table(staff_client):
    body = staff_client.get("/admin/").content.decode()

    stripe_tables = sum(1 for model in admin.site._registry if model._meta.app_label == "djstripe")
    section = _section(body, STRIPE_SECTION)
    assert body.count(STRIPE_SECTION) >= 1 and "Djstripe" not in body
    assert len(re.findall(r'<tr class="model-', section)) == len(STRIPE_ON_INDEX) + 1
    assert f"All {stripe_tables} Stripe tables" in section and 'href="/admin/djstripe/"' in section
    # Parley's keys once; dj-stripe's keys (its Stripe credentials) are only on the Stripe page, named apart.
    assert len(re.findall(r">API keys<", body)) == 1 and "Api keys" not in body
    assert "Stripe API keys" not in body
    assert body.index(STRIPE_SECTION) > body.index("Billing")  # the synced copy comes after Parley's apps
    assert re.search(r'<link rel="icon" href="/static/favicon[^"]*\.svg"', body)


def test_the_stripe_page_lists_every_table(staff_client):
    body = staff_client.get("/admin/djstripe/").content.decode()

    assert STRIPE_SECTION in body and "Stripe API keys" in body and "Stripe tables" not in body
    assert "Payment intents" in body and "Webhook endpoints" in body


def test_usage_rows_show_durations_and_cost_with_units(staff_client):
    UsageRecord.objects.create(request_id="r1", user=user_make(), model_name="qwen", task="chat", prompt_tokens=10,
                               completion_tokens=20, ttft_ms=140.0, duration_ms=2300.0, audio_seconds=185.0,
                               cost=Decimal("0.000123"))

    body = staff_client.get("/admin/inference/usagerecord/").content.decode()

    row = body[body.index('<tr><td class="action-checkbox">'):]
    row = row[:row.index("</tr>")]
    for shown in ("140 ms", "2.3 s", "3 min 5 s", "$0.000123 USD"):
        assert f">{shown}</td>" in row, shown
    assert "2300.0" not in row and "185.0" not in row
    # The formatted columns still sort by their field.
    assert staff_client.get("/admin/inference/usagerecord/?o=11").status_code == 200
