"""Reads for knowledge: who may see which collection, documents and chunks, and retrieval."""

from __future__ import annotations

from knowledge.selectors.access import (
    ACCESS_MANAGE,
    ACCESS_READ,
    ACCESS_WRITE,
    chunks_of_document,
    collection_access,
    collection_get_for,
    collections_of_team_with_counts,
    collections_readable,
    collections_with_counts,
    collections_writable,
    document_get_for,
    documents_of_collection,
    documents_ready_count_added_by,
    documents_totals_for_user,
    grants_of_collection,
    passage_get_for,
)
from knowledge.selectors.search import (
    CITATION_INSTRUCTIONS,
    MAX_QUERY_CHARS,
    Citation,
    SearchResult,
    chunks_search,
    citation_url,
    cited_numbers,
    context_build,
    context_for_chat,
    passage_api_url,
    relevance_floor,
    sources_cited,
)

__all__ = [
    "ACCESS_MANAGE", "ACCESS_READ", "ACCESS_WRITE", "CITATION_INSTRUCTIONS", "MAX_QUERY_CHARS", "Citation",
    "SearchResult",
    "chunks_of_document", "chunks_search", "citation_url", "collection_access", "collection_get_for",
    "collections_of_team_with_counts", "collections_readable", "collections_with_counts",
    "collections_writable", "context_build", "context_for_chat", "document_get_for",
    "documents_of_collection", "documents_ready_count_added_by", "documents_totals_for_user", "grants_of_collection",
    "cited_numbers", "passage_api_url", "passage_get_for", "relevance_floor", "sources_cited",
]
