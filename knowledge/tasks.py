"""Ingest on the `default` queue. The task takes an id; the service claims the row itself."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(name="knowledge.tasks.document_ingest", autoretry_for=(OperationalError, InterfaceError),
             retry_backoff=2, retry_backoff_max=60, max_retries=5)
def document_ingest_task(document_id: int) -> dict[str, object]:
    """Safe to run twice: a second run finds the row claimed (or done) and returns at once."""
    from knowledge.services import document_ingest

    # In-process embedding: the worker loads the embedding model once and reuses it for every
    # batch, instead of a round trip through the gpu queue per batch.
    document = document_ingest(document_id=document_id, in_process=True)
    if document is None:
        return {"document_id": document_id, "skipped": True}
    return {"document_id": document_id, "status": document.status, "chunks": document.chunk_count}
