"""The "Parley Pro" offer as first installed (migration 0002) and as tests recreate it after a flush."""

from __future__ import annotations

PRO_SLUG = "parley-pro"

PRO_TERMS = """\
Parley Pro: full access starts at once. $1,999.00 is charged to your saved card 24 hours after you
buy. You can cancel at no charge until then. The 24-hour grace period comes once per customer: if you
buy again after an earlier purchase (canceled, refunded or suspended), the $1,999.00 is charged at
once. If that charge is declined, the same total is collected
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
    "terms_version": "2026-12-03",
    "terms_text": PRO_TERMS,
}

# The plans as first installed (migration 0003). Staff change the numbers in admin → Plans.
FREE_PLAN = {
    "name": "Free",
    "summary": "Chat, voice and your own documents on the default model.",
    "position": 0,
    "requests_per_minute": 20,
    "tokens_per_day": 50_000,
    "voice_minutes_per_day": 10,
    "speech_characters_per_day": 20_000,
    "knowledge_documents": 25,
    "knowledge_megabytes": 50,
    "api_keys": 2,
    "max_tokens_per_reply": 1024,
}
PRO_PLAN = {
    "name": "Parley Pro",
    "summary": "The quality model, ten times the quotas and far more knowledge storage.",
    "position": 1,
    "requests_per_minute": 120,
    "tokens_per_day": 1_000_000,
    "voice_minutes_per_day": 180,
    "speech_characters_per_day": 500_000,
    "knowledge_documents": 2_000,
    "knowledge_megabytes": 5_000,
    "api_keys": 25,
    "max_tokens_per_reply": 4096,
}

CHARGE_TASK_NAME = "billing: charge due payments"
