"""Consent, the privacy page and the browser's event endpoint."""

from __future__ import annotations

from django.urls import path

from onboarding import consent_views

urlpatterns = [
    path("privacy/", consent_views.privacy_page, name="privacy"),
    path("privacy/consent/", consent_views.privacy_consent, name="privacy_consent"),
    path("api/analytics/events", consent_views.analytics_events, name="analytics_events"),
]
