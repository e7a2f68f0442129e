"""Consent and the privacy page (the browser's event POST shares its path with the staff API: analytics_urls)."""

from __future__ import annotations

from django.urls import path

from onboarding import consent_views

urlpatterns = [
    path("privacy/", consent_views.privacy_page, name="privacy"),
    path("privacy/consent/", consent_views.privacy_consent, name="privacy_consent"),
]
