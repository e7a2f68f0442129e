"""Writes for knowledge: collections and grants, adding and deleting documents, and ingest."""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts.models import Team, User
from accounts.selectors import teams_of_user
from common.errors import ApplicationError, plan_limit_error
from common.metrics import counter_add
from common.notifications import user_notify
from common.plans import plan_of
from common.text import FILENAME_MAX_BYTES, filename_clean
from knowledge.chunking import chunks_stream, passage_embedding_text
from knowledge.extraction import KIND_MIMES, KNOWN_EXTENSIONS, Extraction, ExtractionError, kind_detect, kind_sniff
from knowledge.fetch import FetchError, address_allowed, networks_parse, url_fetch
from knowledge.models import Chunk, Collection, CollectionGrant, Document
from knowledge.selectors import ACCESS_MANAGE, ACCESS_WRITE, collection_access
from onboarding.services import Event, event_record

logger = logging.getLogger(__name__)
_COPY_BYTES = 1024 * 1024

# --------------------------------------------------------------------------- collections


@transaction.atomic
def collection_create(*, user: User, name: str, description: str = "", team: Team | None = None) -> Collection:
    """A collection owned by the user, or by one of their teams."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A collection needs a name.", code="name_required")
    if team is not None and not teams_of_user(user=user).filter(pk=team.pk).exists():
        raise ApplicationError("You can only create collections for teams you belong to.",
                               code="permission_denied", status=403)
    return Collection.objects.create(
        name=name[:120], description=description.strip(), owner_user=None if team else user, owner_team=team,
        created_by=user,
    )


@transaction.atomic
def collection_readable_by_all_set(*, user: User, collection: Collection, readable: bool) -> Collection:
    """Let every signed-in user read the collection (or stop): staff only, on a collection they manage."""
    if not user.is_staff:
        raise ApplicationError("Only staff can make a collection readable by everyone.", code="permission_denied",
                               status=403)
    _require(user, collection, ACCESS_MANAGE)
    Collection.objects.filter(pk=collection.pk).update(readable_by_all=readable, updated_at=timezone.now())
    collection.readable_by_all = readable
    return collection


def _require(user: User, collection: Collection, need: str) -> None:
    access = collection_access(user=user, collection=collection)
    if access is None:
        raise ApplicationError("No such collection.", code="not_found", status=404)
    if need == ACCESS_MANAGE and access != ACCESS_MANAGE:
        raise ApplicationError("Only the collection's owner (or a team owner or admin) can do that.",
                               code="permission_denied", status=403)
    if need == ACCESS_WRITE and access not in (ACCESS_WRITE, ACCESS_MANAGE):
        raise ApplicationError("You may read this collection but not change it; ask its owner for write access.",
                               code="permission_denied", status=403)


@transaction.atomic
def collection_delete(*, user: User, collection: Collection) -> None:
    _require(user, collection, ACCESS_MANAGE)
    files = [document.file.name for document in collection.documents.exclude(file="")]
    collection.delete()
    transaction.on_commit(lambda: _files_delete(files))


@transaction.atomic
def collection_share(*, user: User, collection: Collection, permission: str, grantee_email: str = "",
                     team: Team | None = None) -> CollectionGrant:
    """Grant read or write to a user (by email) or a team; sharing again changes the permission."""
    _require(user, collection, ACCESS_MANAGE)
    if permission not in CollectionGrant.Permission.values:
        raise ApplicationError("Permission must be read or write.", code="invalid_permission")
    if bool(grantee_email.strip()) == (team is not None):
        raise ApplicationError("Share with either a user's email address or a team.", code="grantee_required")
    grantee = None
    if team is None:
        grantee = User.objects.filter(email__iexact=grantee_email.strip(), is_active=True).first()
        if grantee is None:
            raise ApplicationError(f"No Parley user has the address {grantee_email.strip()}; "
                                   "they need to sign up first.", code="user_not_found")
        if grantee.pk == collection.owner_user_id:
            raise ApplicationError("That user owns this collection already.", code="already_owner")
    elif team.pk == collection.owner_team_id:
        raise ApplicationError("That team owns this collection already.", code="already_owner")
    grant, created = CollectionGrant.objects.get_or_create(
        collection=collection, user=grantee, team=team if grantee is None else None,
        defaults={"permission": permission, "granted_by": user},
    )
    if not created and grant.permission != permission:
        CollectionGrant.objects.filter(pk=grant.pk).update(permission=permission, granted_by=user)
        grant.permission = permission
    return grant


@transaction.atomic
def grant_revoke(*, user: User, grant: CollectionGrant) -> None:
    _require(user, grant.collection, ACCESS_MANAGE)
    grant.delete()


# --------------------------------------------------------------------------- adding documents


def _hash_file(handle) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: handle.read(_COPY_BYTES), b""):
        digest.update(block)
        size += len(block)
    handle.seek(0)
    return digest.hexdigest(), size


def _storage_check(*, user: User, size: int) -> None:
    """The uploader's plan caps the documents they keep and their megabytes (failed ones don't count).
    The user's row lock makes concurrent uploads count one after another, so none overruns the cap."""
    plan = plan_of(user)
    if plan is None:
        return
    User.objects.select_for_update().filter(pk=user.pk).first()
    kept = Document.objects.filter(added_by=user).exclude(status=Document.Status.FAILED)
    totals = kept.aggregate(count=Count("id"), size=Sum("size"))
    if totals["count"] >= plan.knowledge_documents:
        raise plan_limit_error(plan=plan, limit="knowledge_documents", label="knowledge documents",
                               used=totals["count"])
    megabytes, adding = (totals["size"] or 0) / 1_000_000, size / 1_000_000
    if megabytes + adding > plan.knowledge_megabytes:
        raise plan_limit_error(plan=plan, limit="knowledge_megabytes", label="MB of knowledge documents",
                               used=round(megabytes), asked=max(1, round(adding)))


# In a name without spaces, a dash before a letter joins words ("fog-signal", "2026-12-03-log");
# one before a digit is part of the name ("Apache-2.0", "CC0-1.0", "covid-19").
_SLUG_DASH = re.compile(r"(?<=[^\W_])-(?=[^\W\d_])")


def document_title_from_filename(filename: str) -> str:
    """A readable title from a file name, in the name's own case: a known extension dropped
    ("Fog Signal.md" is "Fog Signal"; "Apache-2.0" keeps its ".0"), underscores and slug dashes
    read as spaces."""
    name = (filename or "").strip()
    path = Path(name)
    stem = path.stem if path.suffix.lower() in KNOWN_EXTENSIONS else name
    stem = stem.replace("_", " ")
    if " " not in stem.strip():
        stem = _SLUG_DASH.sub(" ", stem)
    stem = " ".join(stem.split())
    return (stem or name or "Untitled")[:300]


@transaction.atomic
def document_create_from_file(*, user: User, collection: Collection, file: UploadedFile | File,
                              title: str = "", source: str = Document.Source.UPLOAD, enqueue: bool = True,
                              ) -> tuple[Document, bool]:
    """Store a file and queue its ingest. Returns (document, created); the same bytes already in
    the collection return the existing document and change nothing. `enqueue=False` leaves the
    ingest to the caller (the benchmark runs it in-process)."""
    _require(user, collection, ACCESS_WRITE)
    # A name over 255 bytes (150 × "é") can't be a file on disk; it is cut, keeping the extension.
    filename = filename_clean(file.name or "")
    # From the name as given: the stored name may be cut to 255 bytes, a title may be 300 characters.
    title = (title or document_title_from_filename(filename_clean(file.name or "", max_bytes=4 * 300)))[:300]
    mime = (getattr(file, "content_type", "") or "")[:120]
    size = file.size or 0
    if size > settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES:
        # Not read at all: a failed row tells the uploader why, without hashing gigabytes.
        document = Document.objects.create(
            collection=collection, title=title, source=source, filename=filename,
            mime=mime, size=size, status=Document.Status.FAILED, added_by=user,
            error=f"{filename} is {size / 1024 / 1024:,.1f} MB; the limit is "
                  f"{settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES / 1024 / 1024:,.0f} MB. Split it into smaller files.",
        )
        return document, True
    file.seek(0)
    try:
        # The first 8 KB decide: a wrong type is refused now, with the reason, rather than
        # becoming a failed document after a trip through the queue.
        kind_sniff(handle=file, filename=filename, mime=mime)
    except ExtractionError as exc:
        raise ApplicationError(str(exc), code="unsupported_file_type", status=415) from exc
    sha256, size = _hash_file(file)
    existing = Document.objects.filter(collection=collection, sha256=sha256).first()
    if existing is not None:
        return existing, False
    _storage_check(user=user, size=size)
    document = Document(
        collection=collection, title=title, source=source, filename=filename,
        mime=mime, size=size, sha256=sha256, added_by=user,
    )
    try:
        with transaction.atomic():
            # Streams in chunks, never read whole. Shorter on disk: the storage may add "_abc1234".
            document.file.save(filename_clean(filename, max_bytes=FILENAME_MAX_BYTES - 32), file, save=False)
            document.save()
    except IntegrityError:  # the same file uploaded concurrently: the other upload won
        document.file.delete(save=False)
        return Document.objects.get(collection=collection, sha256=sha256), False
    if enqueue:
        _ingest_enqueue(document)
    event_record(user_id=user.pk, name=Event.DOCUMENT_ADDED)
    return document, True


def document_create_from_text(*, user: User, collection: Collection, title: str, text: str
                              ) -> tuple[Document, bool]:
    """A document sent as text through the API; stored as a .txt file and ingested like one."""
    if not (text or "").strip():
        raise ApplicationError("The text is empty.", code="text_empty")
    name = (document_title_from_filename(title) if title else "document") + ".txt"
    with tempfile.TemporaryFile() as handle:
        handle.write(text.encode())
        handle.seek(0)
        wrapped = File(handle, name=name)
        wrapped.content_type = "text/plain"
        return document_create_from_file(user=user, collection=collection, file=wrapped,
                                         title=title or "Untitled", source=Document.Source.API)


@transaction.atomic
def document_create_from_url(*, user: User, collection: Collection, url: str, title: str = ""
                             ) -> tuple[Document, bool]:
    """Queue a web page or file for the worker to fetch; the same URL again returns the first."""
    _require(user, collection, ACCESS_WRITE)
    url = (url or "").strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ApplicationError("Give an http:// or https:// address.", code="invalid_url")
    if _private_literal(parsed.hostname):
        # Names are checked by the worker when it resolves them; an address is refused now.
        raise ApplicationError(f"{parsed.hostname} is a private or local address; Parley only fetches public "
                               "pages.", code="invalid_url")
    existing = (
        Document.objects.filter(collection=collection, source_url=url)
        .exclude(status=Document.Status.FAILED).first()
    )
    if existing is not None:
        return existing, False
    _storage_check(user=user, size=0)  # the page's size counts once it is fetched
    document = Document.objects.create(
        collection=collection, title=(title or url)[:300], source=Document.Source.URL, source_url=url,
        filename=filename_clean(Path(parsed.path).name, default=parsed.hostname), added_by=user,
    )
    _ingest_enqueue(document)
    event_record(user_id=user.pk, name=Event.DOCUMENT_ADDED)
    return document, True


def _private_literal(host: str) -> bool:
    if settings.PARLEY_KNOWLEDGE_FETCH_PRIVATE_URLS:
        return False
    try:
        return not address_allowed(host, allowed_networks=networks_parse(
            settings.PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS))
    except ValueError:  # a name, not an address
        return False


def _ingest_enqueue(document: Document) -> None:
    from knowledge.tasks import document_ingest_task

    document_id = document.pk
    transaction.on_commit(lambda: document_ingest_task.delay(document_id))


@transaction.atomic
def document_delete(*, user: User, document: Document) -> None:
    """Remove the document, its chunks (cascade, one DELETE) and its stored file."""
    _require(user, document.collection, ACCESS_WRITE)
    name = document.file.name
    document.delete()
    if name:
        transaction.on_commit(lambda: _files_delete([name]))


def _files_delete(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        default_storage.delete(name)


@transaction.atomic
def document_retry(*, user: User, document: Document) -> Document:
    """Queue a failed document again (after the operator raised a limit, say)."""
    _require(user, document.collection, ACCESS_WRITE)
    updated = Document.objects.filter(pk=document.pk, status=Document.Status.FAILED).update(
        status=Document.Status.PENDING, progress=0, error="", claimed_at=None
    )
    if updated:
        _ingest_enqueue(document)
    document.refresh_from_db()
    return document


# --------------------------------------------------------------------------- ingest


class _Failure(Exception):
    pass


def _progress(document: Document, *, status: str, progress: int, error: str = "", chunk_count: int | None = None
              ) -> None:
    """Write progress to the row (guarded by our claim) and push it to the uploader's sockets."""
    fields = {"status": status, "progress": progress, "error": error}
    if chunk_count is not None:
        fields["chunk_count"] = chunk_count
    Document.objects.filter(pk=document.pk, claimed_at=document.claimed_at).update(**fields, updated_at=timezone.now())
    if document.added_by_id:
        try:
            user_notify(user_id=document.added_by_id, event="knowledge.document", data={
                "id": document.pk, "collection_id": document.collection_id, "status": status,
                "progress": progress, "error": error, "chunk_count": chunk_count,
            })
        except Exception:  # a live update is a nicety; the row is the truth
            logger.warning("could not push progress of document %s", document.pk, exc_info=True)


def document_claim(*, document_id: int) -> Document | None:
    """Take the document for ingest with one conditional UPDATE; None if another run has it or it's done."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    # A processing row whose claim is older than the task time limit was left by a dead worker.
    claimable = Q(status=Document.Status.PENDING) | Q(status=Document.Status.PROCESSING, claimed_at__lt=stale)
    claimed = Document.objects.filter(claimable, pk=document_id).update(
        status=Document.Status.PROCESSING, progress=1, error="", claimed_at=now, updated_at=now
    )
    if not claimed:
        return None
    return Document.objects.select_related("collection").get(pk=document_id)


def document_ingest(*, document_id: int, in_process: bool = True, timings: dict[str, float] | None = None
                    ) -> Document | None:
    """Extract, chunk, embed and store one document, reporting progress; safe to run twice.

    Not one transaction: progress must be visible while it runs, so each batch commits on its
    own, and the chunks become searchable only when the document turns `ready`.
    """
    document = document_claim(document_id=document_id)
    if document is None:
        return None
    Chunk.objects.filter(document_id=document.pk).delete()  # leftovers of a crashed attempt
    _progress(document, status=Document.Status.PROCESSING, progress=1)
    try:
        count = _ingest(document, in_process=in_process, timings=timings)
    except IntegrityError:
        # The document was deleted while we worked (its chunks' foreign key no longer holds).
        logger.info("document %s disappeared during ingest", document_id)
        return None
    except _Failure as exc:
        return _fail(document, str(exc))
    except ExtractionError as exc:
        return _fail(document, str(exc))
    except SoftTimeLimitExceeded:
        return _fail(document, f"Ingest took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s and was stopped. "
                               "Split the document into smaller files.")
    except Exception as exc:  # the document says what broke; the worker goes on
        logger.exception("ingest of document %s failed", document_id)
        return _fail(document, f"Ingest failed unexpectedly ({exc.__class__.__name__}: {exc}). "
                               "Try again; if it keeps failing, tell the operator.")
    _progress(document, status=Document.Status.READY, progress=100, chunk_count=count)
    event_record(user_id=document.added_by_id, name=Event.DOCUMENT_READY)
    counter_add("parley_ingest_passages", count)
    counter_add("parley_ingest_documents", outcome="ready")
    document.refresh_from_db()
    return document


def _fail(document: Document, reason: str) -> Document:
    Chunk.objects.filter(document_id=document.pk).delete()
    _progress(document, status=Document.Status.FAILED, progress=0, error=reason[:2000], chunk_count=0)
    counter_add("parley_ingest_documents", outcome="failed")
    document.refresh_from_db()
    return document


def _ingest(document: Document, *, in_process: bool, timings: dict[str, float] | None = None) -> int:
    from inference.services import Caller, embed

    caller = Caller(user=document.added_by, via="ingest")

    def embed_texts(*, texts: list[str], in_process: bool):
        return embed(caller=caller, texts=texts, in_process=in_process).vectors

    timings = timings if timings is not None else {}
    with _local_copy(document) as path:
        size = path.stat().st_size
        if size > settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES:
            raise _Failure(f"The file is {size / 1024 / 1024:,.1f} MB; the limit is "
                           f"{settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES / 1024 / 1024:,.0f} MB.")
        kind = kind_detect(path=path, filename=document.filename or document.title, mime=document.mime)
        Document.objects.filter(pk=document.pk).update(mime=KIND_MIMES[kind], size=size)
        extraction = Extraction(path=path, kind=kind, filename=document.filename or document.title)
        batch_size = settings.PARLEY_KNOWLEDGE_EMBED_BATCH
        batch, count, last_push = [], 0, 0.0
        started = time.perf_counter()
        for span in chunks_stream(extraction):
            batch.append(span)
            if len(batch) < batch_size:
                continue
            timings["extract_chunk"] = timings.get("extract_chunk", 0) + time.perf_counter() - started
            count = _store_batch(document, batch, count, in_process=in_process, embed=embed_texts, timings=timings)
            batch = []
            if time.monotonic() - last_push > 0.3:
                _progress(document, status=Document.Status.PROCESSING, progress=max(2, int(95 * extraction.fraction)))
                last_push = time.monotonic()
            started = time.perf_counter()
        timings["extract_chunk"] = timings.get("extract_chunk", 0) + time.perf_counter() - started
        if batch:
            count = _store_batch(document, batch, count, in_process=in_process, embed=embed_texts, timings=timings)
    if count == 0:
        raise _Failure("No text could be extracted from this file. If it is a scanned PDF, run it through OCR "
                       "first; otherwise check that it is not empty.")
    return count


def _store_batch(document: Document, spans: list, count: int, *, in_process: bool, embed, timings: dict) -> int:
    started = time.perf_counter()
    # The vector is of the passage under its title and heading; the stored text, which citations
    # quote and offsets point into, stays the passage alone.
    vectors = embed(texts=[passage_embedding_text(title=document.title, heading=span.heading, text=span.text)
                           for span in spans], in_process=in_process)
    embedded = time.perf_counter()
    Chunk.objects.bulk_create([
        Chunk(document_id=document.pk, collection_id=document.collection_id, ordinal=count + index,
              text=span.text, start_offset=span.start, end_offset=span.end, token_count=span.token_count,
              title=document.title, heading=span.heading, embedding=vectors[index])
        for index, span in enumerate(spans)
    ])
    timings["embed"] = timings.get("embed", 0) + embedded - started
    timings["store"] = timings.get("store", 0) + time.perf_counter() - embedded
    return count + len(spans)


class _local_copy:
    """The document's bytes as a local path: the stored file, or a URL fetched to a temp file."""

    def __init__(self, document: Document) -> None:
        self.document, self.temp = document, None

    def __enter__(self) -> Path:
        if self.document.source == Document.Source.URL:
            self.temp = tempfile.NamedTemporaryFile(prefix="parley-fetch-", delete=False)
            _fetch(self.document, self.temp)
            self.temp.close()
            return Path(self.temp.name)
        if not self.document.file:
            raise _Failure("The document has no stored file; upload it again.")
        try:
            return Path(self.document.file.path)
        except NotImplementedError:  # remote storage: copy it down in blocks
            self.temp = tempfile.NamedTemporaryFile(prefix="parley-doc-", delete=False)
            with self.document.file.open("rb") as source:
                for block in iter(lambda: source.read(_COPY_BYTES), b""):
                    self.temp.write(block)
            self.temp.close()
            return Path(self.temp.name)

    def __exit__(self, *exc_info) -> None:
        if self.temp is not None:
            Path(self.temp.name).unlink(missing_ok=True)


def _fetch(document: Document, out) -> None:
    """Download the URL in blocks (knowledge/fetch.py checks every hop's address, size and time)."""
    try:
        fetched = url_fetch(
            url=document.source_url, out=out, max_bytes=settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES,
            timeout=settings.PARLEY_KNOWLEDGE_FETCH_TIMEOUT,
            allow_private=settings.PARLEY_KNOWLEDGE_FETCH_PRIVATE_URLS,
            allowed_networks=networks_parse(settings.PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS),
        )
    except FetchError as exc:
        raise _Failure(str(exc))
    duplicate = Document.objects.filter(collection_id=document.collection_id, sha256=fetched.sha256).exclude(
        pk=document.pk)
    if (other := duplicate.first()) is not None:
        raise _Failure(f"This page has the same content as “{other.title}”, already in this collection.")
    Document.objects.filter(pk=document.pk).update(sha256=fetched.sha256, size=fetched.size, mime=fetched.mime[:120])
    document.mime = fetched.mime


def citation_open(*, user: User, document: Document, chunk_id: int) -> bool:
    """The user opened a cited passage (a chat reply's citation link); True if the chunk is the document's."""
    if not Chunk.objects.filter(pk=chunk_id, document=document).exists():
        return False
    event_record(user_id=user.pk, name=Event.CITATION_OPENED, data={"document": document.pk, "chunk": chunk_id})
    return True
