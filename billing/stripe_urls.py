"""dj-stripe's webhook endpoint, mounted at /stripe/webhook/<uuid>/ (namespace `djstripe`)."""

from __future__ import annotations

from django.urls import path

from billing.views import stripe_webhook

app_name = "djstripe"

urlpatterns = [path("webhook/<uuid:uuid>/", stripe_webhook, name="djstripe_webhook_by_uuid")]
