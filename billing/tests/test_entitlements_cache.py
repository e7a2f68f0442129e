"""The plans every request's limits come from are kept per process; staff's edits reach the next request."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import user_make
from billing.models import Offer, Plan
from billing.selectors import entitlements_for_user
from billing.tests.factories import free_plan_set

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_users_limits_take_one_query_once_warm():
    free_plan_set(tokens_per_day=1234)
    user = user_make()
    entitlements_for_user(user=user)
    with CaptureQueriesContext(connection) as queries:
        limits = entitlements_for_user(user=user)
    assert limits.tokens_per_day == 1234
    assert len(queries) == 1, [q["sql"] for q in queries]  # the user's own purchase, nothing shared


def test_an_edited_plan_is_seen_by_the_next_request():
    free_plan_set(tokens_per_day=1000)
    user = user_make()
    assert entitlements_for_user(user=user).tokens_per_day == 1000

    plan = Plan.objects.get(slug=Plan.FREE_SLUG)  # staff edit the free plan in admin
    plan.tokens_per_day = 50
    plan.save()
    assert entitlements_for_user(user=user).tokens_per_day == 50

    offer = Offer.objects.get(is_active=True)  # staff take the offer off sale: no upgrade to offer
    offer.is_active = False
    offer.save()
    assert entitlements_for_user(user=user).upgrade is None
