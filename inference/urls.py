from __future__ import annotations

from django.urls import path

from inference import apis, usage_apis, views

v1_urlpatterns = [
    path("models", apis.ModelListApi.as_view(), name="v1-models"),
    path("chat/completions", apis.ChatCompletionApi.as_view(), name="v1-chat-completions"),
    path("embeddings", apis.EmbeddingApi.as_view(), name="v1-embeddings"),
    path("audio/transcriptions", apis.TranscriptionApi.as_view(), name="v1-audio-transcriptions"),
    path("audio/speech", apis.SpeechApi.as_view(), name="v1-audio-speech"),
]

api_urlpatterns = [
    path("usage/", usage_apis.UsageSummaryApi.as_view(), name="api-usage"),
    path("usage/records/", usage_apis.UsageRecordListApi.as_view(), name="api-usage-records"),
    path("usage/records/<str:request_id>/", usage_apis.UsageRecordDetailApi.as_view(), name="api-usage-record"),
]

app_urlpatterns = [
    path("usage/", views.usage_page, name="usage"),
]
