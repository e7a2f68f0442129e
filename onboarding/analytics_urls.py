"""The staff analytics dashboard and its API."""

from __future__ import annotations

from django.urls import path

from onboarding import analytics_apis, analytics_views

urlpatterns = [
    path("staff/analytics/", analytics_views.dashboard, name="analytics_dashboard"),
    path("api/analytics/timeseries", analytics_apis.AnalyticsTimeseriesApi.as_view(), name="api_analytics_timeseries"),
    path("api/analytics/top", analytics_apis.AnalyticsTopApi.as_view(), name="api_analytics_top"),
    # GET: staff's counts by name; POST: the browser's batches (AnalyticsEventsApi.dispatch hands them to
    # consent_views.analytics_events).
    path("api/analytics/events", analytics_apis.AnalyticsEventsApi.as_view(), name="analytics_events"),
    path("api/analytics/funnel", analytics_apis.AnalyticsFunnelApi.as_view(), name="api_analytics_funnel"),
]
