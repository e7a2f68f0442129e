from __future__ import annotations

import itertools
import time

from accounts.models import Team, User
from accounts.services import membership_add, team_create
from accounts.tests.factories import user_make
from knowledge.models import Collection, Document
from knowledge.services import collection_create, collection_share, document_create_from_file, document_ingest
from knowledge.tests.files import upload

_counter = itertools.count(1)


def collection_make(*, user: User | None = None, team: Team | None = None, name: str = "") -> Collection:
    user = user or user_make()
    return collection_create(user=user, name=name or f"Collection {next(_counter)}", team=team)


def team_make(*, owner: User, members: list[User] = (), name: str = "") -> Team:
    team = team_create(name=name or f"Team {next(_counter)}", owner=owner)
    for member in members:
        membership_add(team=team, user=member)
    return team


def document_ready(*, collection: Collection, user: User, text: str, name: str = "") -> Document:
    """A document ingested synchronously in this process (real extraction, chunking, embeddings)."""
    document, _ = document_create_from_file(user=user, collection=collection,
                                            file=upload(name or f"doc-{next(_counter)}.txt", text, "text/plain"))
    ingested = document_ingest(document_id=document.pk)
    if ingested is not None:
        return ingested
    # In transactional tests a live worker may have claimed it first (the upload queued a task).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.status in (Document.Status.READY, Document.Status.FAILED):
            return document
        time.sleep(0.1)
    raise AssertionError(f"document {document.pk} is still {document.status}")


def grant(*, collection: Collection, by: User, to: User | None = None, team: Team | None = None,
          permission: str = "read"):
    return collection_share(user=by, collection=collection, permission=permission,
                            grantee_email=to.email if to else "", team=team)
