"""The seeded assistants' starter collections: knowledge/starter/<directory>/, made readable by everyone.

A write service (run by `manage.py assistants_starter`, which `make run` calls): it creates each
collection once, owned by a staff user, adds its files through the normal ingest path (deduplicated by
content, so a second run adds nothing) and makes it the assistant's default knowledge. Each turn still
searches only what the user may read, and everyone may read these. Documents an earlier release shipped
and this one withdrew (RETIRED) leave the starter collection on the next run, if they are unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction

from accounts.models import User
from chat.models import Assistant
from chat.seed import STARTER_COLLECTIONS
from common.errors import ApplicationError

STARTER_DIR = Path(settings.BASE_DIR) / "knowledge" / "starter"
# Titles of the files that have no heading of their own (plain-text licences).
TITLES = {
    "gpl-3.0.txt": "GNU General Public License v3.0 (GPL-3.0)",
    "apache-2.0.txt": "Apache License 2.0",
    "bsd-3-clause.txt": "BSD 3-Clause License",
    "mit.txt": "MIT License",
    "python-psf-license.txt": "Python Software Foundation License (PSF-2.0) and Python's licence history",
}
# Files earlier releases shipped in the starter collections and later withdrew, by the sha256 of the file
# as shipped: sample HR and IT policies written for Parley (c60e705), replaced by real public text
# (23a57cb). Left in place, the HR assistant would keep quoting an invented leave policy as the company's.
# Only these exact bytes go: a copy the operator edited has another hash and stays.
RETIRED = {
    "022458aef3530f3201ef2f929836386e4de6077aacc26a473f8a6e70bf9bf774": "hr/conduct-and-concerns.md",
    "532bf7458d33465f0aaf32189e668545aacb66ddb42438e2081c5831996abf4e": "hr/expenses-policy.md",
    "1207638262849cd8a4b184cf475ce79c171c6ea749a08f5f9466f14aa1d80bc1": "hr/leave-policy.md",
    "40855be18b1d1ef27e62c28eb5fed8fb0e6182750ed23b89cb7ef9f186269d9a": "it/accounts-and-passwords.md",
    "e589c27b212504209c8c43213f89d2f0d67f55796a244680933020affc90606f": "it/network-and-devices.md",
    "8cdf376b9ed0ad9e07f4717bdad7565d1e5302d0cf486bf7deb411325e94cf0e": "it/security-incidents.md",
}
_MIMES = {".md": "text/markdown", ".txt": "text/plain"}
_HEADING = re.compile(r"^#\s+(.+)$", re.MULTILINE)


@dataclass
class StarterOutcome:
    assistant: str
    collection_id: int
    collection_created: bool
    documents_added: int
    documents_kept: int
    documents_retired: int = 0


def starter_files(directory: str) -> list[Path]:
    """The documents of a starter directory, in name order; SOURCES.md describes them and is not one."""
    return sorted(path for path in (STARTER_DIR / directory).iterdir()
                  if path.is_file() and path.suffix in _MIMES and path.name != "SOURCES.md")


def _title(path: Path) -> str:
    if path.name in TITLES:
        return TITLES[path.name]
    heading = _HEADING.search(path.read_text(encoding="utf-8")[:2000])
    return heading.group(1).strip() if heading else path.stem


def starter_owner_default() -> User:
    owner = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    if owner is None:
        raise ApplicationError("No superuser yet: the starter collections need a staff owner. Run "
                               "`manage.py dev_superuser` (or createsuperuser) first, or name one with --owner.",
                               code="no_owner")
    return owner


def assistants_starter_install(*, owner: User, only: list[str] | None = None, ingest_now: bool = False
                               ) -> list[StarterOutcome]:
    """Create (once) each seeded assistant's starter collection and add its files. The files are ingested
    by the workers, or here and now with `ingest_now` (tests; a machine without workers)."""
    from knowledge.models import Collection, Document
    from knowledge.services import (
        collection_create,
        collection_readable_by_all_set,
        document_create_from_file,
        document_delete,
        document_ingest,
        document_retry,
    )

    if not owner.is_staff:
        raise ApplicationError("The starter collections are owned by staff; pick a staff user.", code="not_staff")
    unknown = sorted(set(only or ()) - set(STARTER_COLLECTIONS))
    if unknown:
        raise ApplicationError(f"No starter collection for {', '.join(unknown)}; there are "
                               f"{', '.join(STARTER_COLLECTIONS)}.", code="invalid")
    outcomes = []
    for slug, starter in STARTER_COLLECTIONS.items():
        if only and slug not in only:
            continue
        to_ingest = []
        with transaction.atomic():
            assistant = Assistant.objects.select_for_update().filter(slug=slug, owner=None).first()
            if assistant is None:
                raise ApplicationError(f"The seeded assistant {slug} is missing; run `manage.py migrate`.",
                                       code="not_found")
            defaults = list(assistant.knowledge_collections or [])
            # The collection this command made before: among the assistant's, readable by all, same name.
            collection = Collection.objects.filter(id__in=defaults, readable_by_all=True,
                                                   name=starter["name"]).order_by("id").first()
            created = collection is None
            if created:
                collection = collection_create(user=owner, name=starter["name"], description=starter["description"])
                collection_readable_by_all_set(user=owner, collection=collection, readable=True)
                Assistant.objects.filter(pk=assistant.pk).update(knowledge_collections=[collection.pk, *defaults])
            # Whoever made it adds to it on later runs (another staff user may only read it).
            adder = collection.owner_user if collection.owner_user_id and collection.owner_user.is_active else owner
            retired = 0
            for document in Document.objects.filter(collection=collection, sha256__in=RETIRED):
                document_delete(user=adder, document=document)
                retired += 1
            added = kept = 0
            for path in starter_files(starter["directory"]):
                with path.open("rb") as handle:
                    upload = File(handle, name=path.name)
                    upload.content_type = _MIMES[path.suffix]
                    document, new = document_create_from_file(user=adder, collection=collection, file=upload,
                                                              title=_title(path), enqueue=not ingest_now)
                if not new and document.status == document.Status.FAILED:
                    document_retry(user=adder, document=document)  # a failed ingest is tried again
                    new = True
                added, kept = added + new, kept + (not new)
                if new and ingest_now:
                    to_ingest.append(document.pk)
        if ingest_now:
            for document_id in to_ingest:
                document_ingest(document_id=document_id, in_process=True)
        outcomes.append(StarterOutcome(assistant=slug, collection_id=collection.pk, collection_created=created,
                                       documents_added=added, documents_kept=kept, documents_retired=retired))
    return outcomes
