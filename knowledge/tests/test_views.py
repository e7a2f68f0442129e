from __future__ import annotations

import pydoc_data.topics
import re

import pytest

from accounts.tests.factories import PASSWORD, user_make
from knowledge.models import CollectionGrant, Document
from knowledge.services import document_create_from_file
from knowledge.tests.factories import collection_make, document_ready
from knowledge.tests.files import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return user_make()


def login(client, user):
    assert client.login(email=user.email, password=PASSWORD)
    return client


def test_collections_page_lists_and_creates(client, owner):
    collection_make(user=owner, name="Handbook")
    login(client, owner)

    page = client.get("/app/knowledge/")
    assert page.status_code == 200 and b"Handbook" in page.content and b'href="/app/knowledge/"' in page.content
    response = client.post("/app/knowledge/", {"name": "Policies"})
    assert response.status_code == 302
    assert client.get(response["Location"]).status_code == 200
    assert client.post("/app/knowledge/", {"name": " "}).status_code == 400


def test_document_page_marks_the_cited_passage(client, owner, bundled_models):
    collection = collection_make(user=owner)
    document = document_ready(collection=collection, user=owner, text=pydoc_data.topics.topics["with"][:2500])
    chunk = document.chunks.order_by("ordinal")[1]
    login(client, owner)

    page = client.get(f"/app/knowledge/documents/{document.pk}/?chunk={chunk.pk}")

    html = page.content.decode()
    assert page.status_code == 200
    assert f'class="chunk chunk--cited" id="chunk-{chunk.pk}"' in html
    assert html.count("chunk--cited") == 1 and html.count('class="chunk"') == document.chunk_count - 1


def test_upload_form_share_and_delete(client, owner):
    collection = collection_make(user=owner)
    friend = user_make()
    login(client, owner)

    response = client.post(f"/app/knowledge/collections/{collection.pk}/upload/",
                           {"files": [upload("a.txt", "first file"), upload("b.md", "# second")]})
    assert response.status_code == 302 and Document.objects.filter(collection=collection).count() == 2

    client.post(f"/app/knowledge/collections/{collection.pk}/share/", {"email": friend.email, "permission": "read"})
    grant = CollectionGrant.objects.get(collection=collection, user=friend)
    assert grant.permission == "read"
    page = client.get(f"/app/knowledge/collections/{collection.pk}/").content.decode()
    assert friend.email in page and "data-upload-url" in page

    client.post(f"/app/knowledge/collections/{collection.pk}/grants/{grant.pk}/revoke/")
    assert not CollectionGrant.objects.filter(pk=grant.pk).exists()
    document = Document.objects.filter(collection=collection).first()
    client.post(f"/app/knowledge/documents/{document.pk}/delete/")
    assert not Document.objects.filter(pk=document.pk).exists()


def test_outsiders_get_404_on_every_page(client, owner):
    collection = collection_make(user=owner)
    document = Document.objects.create(collection=collection, title="Secret plan", added_by=owner)
    login(client, user_make())

    base = f"/app/knowledge/collections/{collection.pk}"
    for path in (f"{base}/", f"/app/knowledge/documents/{document.pk}/"):
        response = client.get(path)
        assert response.status_code == 404 and b"Secret plan" not in response.content
    for path in (f"{base}/upload/", f"{base}/share/", f"{base}/delete/",
                 f"/app/knowledge/documents/{document.pk}/delete/", f"/app/knowledge/documents/{document.pk}/retry/"):
        assert client.post(path, {"email": "x@example.com", "permission": "write"}).status_code == 404, path
    assert Document.objects.filter(pk=document.pk).exists()
    assert not CollectionGrant.objects.filter(collection=collection).exists()


def test_readers_cannot_change_a_collection(client, owner):
    collection = collection_make(user=owner)
    reader = user_make()
    CollectionGrant.objects.create(collection=collection, user=reader, permission="read")
    document = Document.objects.create(collection=collection, title="Plan", added_by=owner)
    login(client, reader)

    page = client.get(f"/app/knowledge/collections/{collection.pk}/").content.decode()
    assert "Plan" in page and "data-upload-url" not in page and "Sharing" not in page
    assert client.post(f"/app/knowledge/documents/{document.pk}/delete/").status_code == 403
    assert client.post(f"/app/knowledge/collections/{collection.pk}/delete/").status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()


def test_pages_need_login(client):
    response = client.get("/app/knowledge/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def _without_csrf(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value=""', html)


def test_the_row_endpoint_renders_the_row_the_collection_page_shows(client, owner):
    collection = collection_make(user=owner)
    document, _ = document_create_from_file(user=owner, collection=collection,
                                            file=upload("Fog_Signal-Manual.txt", "Sound the horn."))
    login(client, owner)

    row = client.get(f"/app/knowledge/documents/{document.pk}/row/")
    page = client.get(f"/app/knowledge/collections/{collection.pk}/").content.decode()

    assert row.status_code == 200
    row_html = _without_csrf(row.content.decode()).strip()
    assert row_html.startswith("<tr") and f'id="document-{document.pk}"' in row_html
    assert ">Fog Signal-Manual</a>" in row_html and "Delete Fog Signal-Manual" in row_html
    assert row_html in _without_csrf(page)  # the very same markup, byte for byte


def test_a_reader_gets_the_row_without_actions_and_an_outsider_gets_404(client, owner):
    collection = collection_make(user=owner)
    document = Document.objects.create(collection=collection, title="Secret plan", added_by=owner)
    reader = user_make()
    CollectionGrant.objects.create(collection=collection, user=reader, permission="read")

    login(client, reader)
    row = client.get(f"/app/knowledge/documents/{document.pk}/row/").content.decode()
    assert "Secret plan" in row and "Delete" not in row
    login(client, user_make())
    outsider = client.get(f"/app/knowledge/documents/{document.pk}/row/")
    assert outsider.status_code == 404 and b"Secret plan" not in outsider.content


def test_document_page_shows_markdown_passages_as_text(client, owner, bundled_models):
    collection = collection_make(user=owner)
    document = document_ready(collection=collection, user=owner, name="Fog Signal.md",
                              text="# Fog Signal\n\nThe **fog signal** sounds every *30 seconds*.\n\n"
                                   "<b>not bold</b> and `__exit__` stay readable.")
    login(client, owner)

    html = client.get(f"/app/knowledge/documents/{document.pk}/").content.decode()

    passage = html[html.index('class="chunk__text"'):]
    assert "The fog signal sounds every 30 seconds." in passage and "__exit__ stay readable" in passage
    assert "**" not in passage and "# Fog" not in passage and "&lt;b&gt;not bold&lt;/b&gt;" in passage
