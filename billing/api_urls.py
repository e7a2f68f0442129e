from __future__ import annotations

from django.urls import path

from billing import apis

urlpatterns = [path("billing/status/", apis.BillingStatusApi.as_view(), name="billing_status")]
