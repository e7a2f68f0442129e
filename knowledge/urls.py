from __future__ import annotations

from django.urls import path

from knowledge import apis, views

app_name = "knowledge"

# Pages under /app/knowledge/ (namespace "knowledge").
urlpatterns = [
    path("", views.collections_page, name="collections"),
    path("search/", views.search_page, name="search"),
    path("collections/<int:collection_id>/", views.collection_detail, name="collection_detail"),
    path("collections/<int:collection_id>/upload/", views.document_upload, name="document_upload"),
    path("collections/<int:collection_id>/share/", views.collection_share, name="collection_share"),
    path("collections/<int:collection_id>/grants/<int:grant_id>/revoke/", views.grant_revoke, name="grant_revoke"),
    path("collections/<int:collection_id>/delete/", views.collection_delete, name="collection_delete"),
    path("documents/<int:document_id>/", views.document_detail, name="document_detail"),
    path("documents/<int:document_id>/row/", views.document_row, name="document_row"),
    path("documents/<int:document_id>/delete/", views.document_delete, name="document_delete"),
    path("documents/<int:document_id>/retry/", views.document_retry, name="document_retry"),
]

# The JSON API under /api/knowledge/.
api_urlpatterns = [
    path("collections", apis.CollectionsApi.as_view(), name="api-knowledge-collections"),
    path("collections/<int:collection_id>/documents", apis.DocumentCreateApi.as_view(),
         name="api-knowledge-documents-create"),
    path("collections/<int:collection_id>/documents/list", apis.DocumentListApi.as_view(),
         name="api-knowledge-documents-list"),
    path("documents/<int:document_id>", apis.DocumentApi.as_view(), name="api-knowledge-document"),
    path("passages/<int:chunk_id>", apis.PassageApi.as_view(), name="api-knowledge-passage"),
    path("query", apis.QueryApi.as_view(), name="api-knowledge-query"),
]

# The seed's names, kept as aliases at /rag/.
rag_urlpatterns = [
    path("ingest", apis.RagIngestApi.as_view(), name="rag-ingest"),
    path("query", apis.RagQueryApi.as_view(), name="rag-query"),
]
