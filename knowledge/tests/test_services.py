"""Ingest end to end in this process: real files, real extraction, real embeddings, real Postgres."""

from __future__ import annotations

import pydoc_data.topics

import pytest

from accounts.tests.factories import user_make
from common.errors import ApplicationError
from knowledge.models import Chunk, Document
from knowledge.services import (
    collection_share,
    document_claim,
    document_create_from_file,
    document_create_from_text,
    document_delete,
    document_ingest,
    document_title_from_filename,
)
from knowledge.tests.factories import collection_make, document_ready, grant
from knowledge.tests.files import docx_bytes, pdf_bytes, upload, zip_bomb_bytes

pytestmark = pytest.mark.django_db

TOPICS = pydoc_data.topics.topics


@pytest.fixture
def owner(bundled_models):
    return user_make()


@pytest.fixture
def collection(owner):
    return collection_make(user=owner)


def ingest(owner, collection, name: str, content: bytes | str, content_type: str = "") -> Document:
    document, created = document_create_from_file(user=owner, collection=collection,
                                                  file=upload(name, content, content_type))
    assert created
    return document_ingest(document_id=document.pk)


def test_pdf_is_extracted_chunked_embedded_and_stored(owner, collection):
    pages = [TOPICS["with"][:2500], TOPICS["for"][:2500]]
    document = ingest(owner, collection, "compound.pdf", pdf_bytes(pages))

    assert document.status == "ready", document.error
    assert document.progress == 100 and document.mime == "application/pdf"
    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert len(chunks) == document.chunk_count >= 6
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text) <= 800 and c.token_count > 0 and len(c.embedding) == 384 for c in chunks)
    assert all(len(c.text) >= 500 and c.token_count > 50 for c in chunks[:-1])
    assert "context manager" in " ".join(c.text for c in chunks)
    assert all(a.start_offset < b.start_offset < a.end_offset for a, b in zip(chunks, chunks[1:], strict=False))


def test_docx_html_markdown_and_text(owner, collection):
    docx = ingest(owner, collection, "notes.docx", docx_bytes(["Quarterly planning notes.", TOPICS["if"]]))
    html = ingest(owner, collection, "page.html",
                  "<html><head><title>x</title><script>var secret = 1;</script></head><body><nav>Menu</nav>"
                  "<h1>Exceptions</h1><p>" + TOPICS["try"][:1500] + "</p></body></html>", "text/html")
    markdown = ingest(owner, collection, "readme.md", "# Lambda\n\nSee [the docs](http://x.example/).\n\n"
                      + TOPICS["lambda"])
    text = ingest(owner, collection, "while.txt", TOPICS["while"])

    for document in (docx, html, markdown, text):
        assert document.status == "ready", document.error
    html_text = " ".join(Chunk.objects.filter(document=html).values_list("text", flat=True))
    assert "Exceptions" in html_text and "secret" not in html_text and "Menu" not in html_text
    md_text = " ".join(Chunk.objects.filter(document=markdown).values_list("text", flat=True))
    assert "the docs" in md_text and "x.example" not in md_text
    assert "Quarterly planning notes." in Chunk.objects.filter(document=docx).first().text


def test_same_pdf_twice_is_one_document_and_delete_removes_its_chunks(owner, collection):
    content = pdf_bytes([TOPICS["with"][:3000]])
    first = ingest(owner, collection, "a.pdf", content)
    again, created = document_create_from_file(user=owner, collection=collection, file=upload("copy.pdf", content))

    assert created is False and again.pk == first.pk
    assert Document.objects.filter(collection=collection).count() == 1
    assert document_ingest(document_id=first.pk) is None  # a second run of the task is a no-op
    assert Chunk.objects.filter(document=first).count() == first.chunk_count > 0
    # The same bytes in another collection are a separate document.
    other = collection_make(user=owner)
    _, created = document_create_from_file(user=owner, collection=other, file=upload("a.pdf", content))
    assert created

    with pytest.raises(ApplicationError):
        document_delete(user=user_make(), document=first)
    with pytest.raises(ApplicationError):
        reader = user_make()
        grant(collection=collection, by=owner, to=reader, permission="read")
        document_delete(user=reader, document=first)
    document_delete(user=owner, document=first)

    assert not Document.objects.filter(pk=first.pk).exists()
    assert not Chunk.objects.filter(document_id=first.pk).exists()
    assert not Chunk.objects.filter(collection=collection).exists()


def test_claim_is_taken_once(owner, collection):
    document, _ = document_create_from_file(user=owner, collection=collection, file=upload("a.txt", "text " * 200))

    assert document_claim(document_id=document.pk) is not None
    assert document_claim(document_id=document.pk) is None


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("secret.pdf", "encrypted", "encrypted (password-protected) PDF"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\ngarbage", "not a readable PDF"),
    ("bomb.docx", "bomb", "looks like a zip bomb"),
    ("empty.txt", b"   \n\n  ", "No text could be extracted"),
    ("blank.pdf", "blank", "No text could be extracted"),
])
def test_bad_input_fails_with_a_clear_reason(owner, collection, settings, name, content, reason):
    settings.PARLEY_KNOWLEDGE_MAX_UNPACKED_BYTES = 20 * 1024 * 1024
    if content == "encrypted":
        content = pdf_bytes(["Top secret plans."], password="hunter2")
    elif content == "bomb":
        content = zip_bomb_bytes(megabytes=40)
    elif content == "zip":
        content = zip_bomb_bytes(megabytes=1)
    elif content == "blank":
        content = pdf_bytes([""])
    document = ingest(owner, collection, name, content)

    assert document.status == "failed"
    assert reason in document.error
    assert not Chunk.objects.filter(document=document).exists()


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200), "image.png is a PNG image"),
    ("archive.zip", "zip", "is a ZIP archive"),
    ("fake.docx", b"just text pretending", "named like a DOCX file but its content is not one"),
    ("LICENSE", b"\x00\x01binary\x00" * 50, "binary data"),
    ("notes.txt", b"%PDF-1.7\n%\xff\xff\n", "named like a text file, but its content is a PDF"),
])
def test_a_wrong_type_is_refused_at_upload_with_the_reason_and_no_row(owner, collection, name, content, reason):
    content = zip_bomb_bytes(megabytes=1) if content == "zip" else content

    with pytest.raises(ApplicationError) as refused:
        document_create_from_file(user=owner, collection=collection, file=upload(name, content))

    assert refused.value.status == 415 and refused.value.code == "unsupported_file_type"
    assert reason in refused.value.message and "Accepted: PDF, DOCX, HTML, Markdown or plain UTF-8 text" in \
        refused.value.message
    assert not Document.objects.filter(collection=collection).exists()


@pytest.mark.parametrize("name", ["Apache-2.0", "CC0-1.0", "LICENSE", "notes.v2", "README", "²", "文" * 100])
def test_text_files_without_a_known_extension_ingest_as_text(owner, collection, name):
    document = ingest(owner, collection, name, "Apache License, Version 2.0.\n\n" + TOPICS["pass"][:600])

    assert document.status == "ready", document.error
    assert document.mime == "text/plain" and document.chunk_count >= 1
    assert document.title == name


@pytest.mark.parametrize(("filename", "title"), [
    ("Fog Signal.md", "Fog Signal"),
    ("fog-signal.md", "fog signal"),
    ("Fog_Signal_Manual.PDF", "Fog Signal Manual"),
    ("Apache-2.0", "Apache-2.0"),
    ("CC0-1.0", "CC0-1.0"),
    ("notes.v2", "notes.v2"),
    ("LICENSE", "LICENSE"),
    ("2026-12-03-harbour-log.txt", "2026-12-03 harbour log"),
    ("covid-19-report.docx", "covid-19 report"),
    ("Well-known Lighthouses.md", "Well-known Lighthouses"),
    ("report.final.pdf", "report.final"),
    ("  __  ", "__"),
    ("²", "²"),
    ("Ärger_über-Öl.txt", "Ärger über-Öl"),
])
def test_titles_keep_the_names_case_and_tidy_separators(filename, title):
    assert document_title_from_filename(filename) == title


def test_an_upload_keeps_its_title_case(owner, collection):
    document, _ = document_create_from_file(user=owner, collection=collection,
                                            file=upload("Fog Signal.md", "# Fog Signal\n\nEvery 30 s."))
    assert document.title == "Fog Signal"


def test_file_over_the_size_limit_fails_without_being_read(owner, collection, settings):
    settings.PARLEY_KNOWLEDGE_MAX_FILE_BYTES = 1000
    document, created = document_create_from_file(user=owner, collection=collection, file=upload("big.txt", "x" * 5000))

    assert created and document.status == "failed" and document.sha256 == "" and not document.file
    assert "the limit is" in document.error and "Split it" in document.error


def test_text_documents_and_write_permission(owner, collection):
    reader, writer = user_make(), user_make()
    grant(collection=collection, by=owner, to=reader, permission="read")
    grant(collection=collection, by=owner, to=writer, permission="write")

    with pytest.raises(ApplicationError) as denied:
        document_create_from_text(user=reader, collection=collection, title="Nope", text="Hello there.")
    assert denied.value.status == 403
    with pytest.raises(ApplicationError) as hidden:
        document_create_from_text(user=user_make(), collection=collection, title="Nope", text="Hello.")
    assert hidden.value.status == 404
    document, _ = document_create_from_text(user=writer, collection=collection, title="Notes", text=TOPICS["pass"])
    assert document.source == "api" and document.title == "Notes"
    assert document_ingest(document_id=document.pk).status == "ready"


def test_sharing_rules(owner, collection):
    other = user_make()
    with pytest.raises(ApplicationError):
        collection_share(user=other, collection=collection, permission="read", grantee_email=other.email)
    with pytest.raises(ApplicationError, match="sign up first"):
        collection_share(user=owner, collection=collection, permission="read", grantee_email="nobody@example.com")
    first = collection_share(user=owner, collection=collection, permission="read", grantee_email=other.email)
    second = collection_share(user=owner, collection=collection, permission="write", grantee_email=other.email)
    assert first.pk == second.pk and second.permission == "write"


def test_progress_ends_at_100_and_chunks_hidden_until_ready(owner, collection):
    document = document_ready(collection=collection, user=owner, text=TOPICS["class"])
    assert document.status == "ready" and document.progress == 100 and document.chunk_count > 3


def test_passages_are_embedded_and_indexed_with_their_title_and_heading(owner, collection):
    import numpy as np

    from inference.services import Caller, embed
    from knowledge.chunking import passage_embedding_text

    body = TOPICS["while"][:400]  # short: the title and heading weigh in its vector
    document = ingest(owner, collection, "Loop manual.md", "# Repeating things\n\n" + body)

    assert document.status == "ready", document.error
    chunk = Chunk.objects.filter(document=document).order_by("ordinal").first()
    assert (chunk.title, chunk.heading) == ("Loop manual", "Repeating things")
    assert not chunk.text.startswith("Loop manual")  # what users see and cite is the passage alone
    with_context, alone = embed(caller=Caller(user=owner, via="ingest"), in_process=True, texts=[
        passage_embedding_text(title="Loop manual", heading="Repeating things", text=chunk.text), chunk.text,
    ]).vectors
    stored = np.asarray(chunk.embedding, dtype=np.float32)
    # The int8 embedder scales activations per batch, so a passage embedded among others and on its own
    # agree to ~0.995, not exactly; the passage without its context is much farther.
    assert float(stored @ with_context) > 0.99 and float(stored @ with_context) > float(stored @ alone) + 0.01
    # The keyword leg finds the passage by its title even though its text never says "manual".
    assert "manual" not in chunk.text.lower()
    assert Chunk.objects.filter(pk=chunk.pk, search_vector="manual").exists()
