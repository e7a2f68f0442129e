"""The one way any app asks what a user's plan allows (billing owns plans; see PARLEY_ENTITLEMENTS)."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


@cache
def _provider():
    return import_string(settings.PARLEY_ENTITLEMENTS) if settings.PARLEY_ENTITLEMENTS else None


def plan_of(user: Any) -> Any | None:
    """The user's plan (billing.selectors.Entitlements: limits, plan_name, upgrade, upgrade_url), or None
    when plans are not enforced here (no provider, or PARLEY_PLANS_ENFORCED=false)."""
    provider = _provider()
    if provider is None or user is None or not settings.PARLEY_PLANS_ENFORCED:
        return None
    return provider(user=user)
