"""The "Parley Pro" offer as first installed (migration 0002) and as tests recreate it after a flush."""

from __future__ import annotations

PRO_SLUG = "parley-pro"

PRO_TERMS = """\
Parley Pro: full access starts at once. $1,999.00 is charged to your saved card 24 hours after you
buy. You can cancel at no charge until then. If that charge is declined, the same total is collected
as 100 installments of $19.99, one every 7 days (the first one straight away); Parley's staff may
change that cadence. A missed installment is tried again 1, 3 and 5 days after its due date. After
that, Pro access is suspended until you update your card and pay what is due."""

PRO_OFFER = {
    "name": "Parley Pro",
    "summary": "Higher quotas, the quality model and more knowledge storage.",
    "currency": "usd",
    "price_cents": 199900,
    "grace_hours": 24,
    "reminder_hours_before": 2,
    "installment_count": 100,
    "installment_cents": 1999,
    "installment_interval_days": 7,
    "retry_delays_days": [1, 3, 5],
    "terms_version": "2026-11-22",
    "terms_text": PRO_TERMS,
    "entitlements": {
        "plan": "pro",
        "chat_messages_per_day": 5000,
        "voice_minutes_per_month": 600,
        "knowledge_documents": 2000,
        "knowledge_storage_mb": 5000,
        "api_requests_per_minute": 120,
        "models": ["default", "quality"],
    },
}

CHARGE_TASK_NAME = "billing: charge due payments"
