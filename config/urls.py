from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat import urls as chat_urls
from config import health, views
from inference import urls as inference_urls
from knowledge import urls as knowledge_urls

admin.site.site_header = "Parley admin"
admin.site.site_title = "Parley admin"
admin.site.index_title = "Operations"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="prometheus-django-metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("app/", include("onboarding.urls")),
    # Product analytics: consent, /privacy/, the event endpoint; the staff dashboard and its API.
    path("", include("onboarding.consent_urls")),
    path("", include("onboarding.analytics_urls")),
    path("app/", include("accounts.urls")),
    path("app/", include(inference_urls.app_urlpatterns)),
    path("app/", include(chat_urls.app_urlpatterns)),
    path("app/arena/", include("arena.urls")),
    path("api/", include(chat_urls.api_urlpatterns)),
    path("v1/", include(inference_urls.v1_urlpatterns)),
    path("api/", include(inference_urls.api_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("accounts.api_urls")),
    # Billing: the pages, its API, and dj-stripe's webhook endpoint (signature checked).
    path("billing/", include("billing.urls")),
    path("api/", include("billing.api_urls")),
    path("stripe/", include("billing.stripe_urls")),
]

# Knowledge: pages, API and the seed's /rag/ aliases.
urlpatterns += [
    path("app/knowledge/", include("knowledge.urls")),
    path("api/knowledge/", include(knowledge_urls.api_urlpatterns)),
    path("rag/", include(knowledge_urls.rag_urlpatterns)),
]

# The S-7 evaluation page, its runs and users' own items.
urlpatterns += [
    path("app/evaluation/", include("evaluation.urls")),
]
