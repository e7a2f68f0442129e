"""Billing's figures for /metrics, read from the ledger at scrape time (see common/metrics.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# An attempt stays `sending` for the second or two of a Stripe call; longer means a crashed worker
# or a lost answer, which the next charge run resumes. Minutes of it is what an operator hears about.
UNSETTLED_AFTER_SECONDS = 300


class BillingCollector(Collector):
    def describe(self) -> Iterable:
        """Names only: without describe(), registering would query the ledger in every process at start."""
        yield CounterMetricFamily("parley_charge_attempts", "", labels=["status"])
        yield CounterMetricFamily("parley_charge_amount_cents", "", labels=["status"])
        yield GaugeMetricFamily("parley_charge_attempts_unsettled", "")
        yield GaugeMetricFamily("parley_stripe_webhooks_unprocessed", "")

    def collect(self) -> Iterable:
        from billing.selectors import (
            charge_attempt_totals,
            charge_attempts_unsettled_count,
            webhooks_unprocessed_count,
        )

        try:
            totals = charge_attempt_totals()
            unsettled = charge_attempts_unsettled_count(older_than_seconds=UNSETTLED_AFTER_SECONDS)
            webhooks = webhooks_unprocessed_count()
        except Exception:
            logger.warning("metrics: could not read the billing ledger", exc_info=True)
            return
        attempts = CounterMetricFamily("parley_charge_attempts", "Charge attempts by status (ledger rows)",
                                       labels=["status"])
        amounts = CounterMetricFamily("parley_charge_amount_cents", "Amount of charge attempts by status, cents",
                                      labels=["status"])
        for status, total in sorted(totals.items()):
            attempts.add_metric([status], total["count"])
            amounts.add_metric([status], total["cents"])
        yield attempts
        yield amounts
        yield GaugeMetricFamily("parley_charge_attempts_unsettled",
                                f"Attempts still sending after {UNSETTLED_AFTER_SECONDS} s", value=unsettled)
        yield GaugeMetricFamily("parley_stripe_webhooks_unprocessed",
                                "Signed Stripe webhooks from the last 24 h whose processing failed", value=webhooks)
