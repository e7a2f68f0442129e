"""Reads for knowledge: who may see which collection, documents and chunks, and retrieval."""

from __future__ import annotations

from knowledge.selectors.access import (
    ACCESS_MANAGE,
    ACCESS_READ,
    ACCESS_WRITE,
    chunks_of_document,
    collection_access,
    collection_get_for,
    collections_readable,
    collections_with_counts,
    collections_writable,
    document_get_for,
    documents_of_collection,
    grants_of_collection,
)
from knowledge.selectors.search import (
    MAX_QUERY_CHARS,
    Citation,
    SearchResult,
    chunks_search,
    citation_url,
    context_build,
    context_for_chat,
)

__all__ = [
    "ACCESS_MANAGE", "ACCESS_READ", "ACCESS_WRITE", "MAX_QUERY_CHARS", "Citation", "SearchResult",
    "chunks_of_document", "chunks_search", "citation_url", "collection_access", "collection_get_for",
    "collections_readable", "collections_with_counts",
    "collections_writable", "context_build", "context_for_chat", "document_get_for",
    "documents_of_collection", "grants_of_collection",
]
