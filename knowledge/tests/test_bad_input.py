"""The knowledge pages and services answer bad input with a 4xx and a message, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from accounts.tests.factories import user_make
from common.text import filename_clean
from knowledge.models import Collection, CollectionGrant, Document
from knowledge.services import document_create_from_file
from knowledge.tests.factories import collection_make
from knowledge.tests.files import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, bundled_models):
    user = user_make()
    client.force_login(user)
    return user


@pytest.mark.parametrize(("name", "expected_suffix"), [
    ("é" * 150 + ".pdf", ".pdf"), ("é" * 300, ""), ("x" * 400 + ".docx", ".docx"), ("../../etc/passwd", ""),
    ("a\x00b\x01c.md", ".md"), ("", ""),
])
def test_file_names_are_cut_to_255_bytes_keeping_the_extension(name, expected_suffix):
    cleaned = filename_clean(name)

    assert len(cleaned.encode()) <= 255 and "/" not in cleaned and "\x00" not in cleaned and "\x01" not in cleaned
    assert cleaned.endswith(expected_suffix) and cleaned


def test_an_upload_named_with_150_accented_letters_is_stored(owner):
    collection = collection_make(user=owner)

    file = upload("é" * 150 + ".txt", "Lighthouses and lamps.", "text/plain")

    document, created = document_create_from_file(user=owner, collection=collection, file=file)

    assert created and document.filename.endswith(".txt") and len(document.filename.encode()) <= 255
    assert Path(document.file.path).exists() and len(Path(document.file.path).name.encode()) <= 255


def test_the_upload_form_takes_such_a_file_too(client, owner):
    collection = collection_make(user=owner)

    response = client.post(f"/app/knowledge/collections/{collection.pk}/upload/",
                           {"files": upload("é" * 150 + ".md", "# Lamps\nTrim them at dusk.", "text/markdown")})

    assert response.status_code == 302
    assert Document.objects.get(collection=collection).filename.endswith(".md")


@pytest.mark.parametrize("team", ["abc", "²", "9" * 30, "-1"])
def test_a_team_that_is_not_an_id_is_a_message(client, owner, team):
    create = client.post("/app/knowledge/", {"name": "Handbook", "team": team})
    collection = collection_make(user=owner)
    share = client.post(f"/app/knowledge/collections/{collection.pk}/share/", {"team": team, "permission": "read"},
                        follow=True)

    assert create.status_code == 400 and "team" in create.content.decode().lower()
    assert not Collection.objects.filter(name="Handbook").exists()
    assert share.status_code == 200 and "team" in share.content.decode().lower()
    assert not CollectionGrant.objects.exists()


@pytest.mark.parametrize("field", ["name", "description"])
def test_nul_in_a_collection_name_is_refused_with_a_message(client, owner, field):
    data = {"name": "Handbook", "description": "", field: "Hand\x00book"}

    response = client.post("/app/knowledge/", data)

    assert response.status_code == 400 and "control character (NUL)" in response.content.decode()


def test_nul_in_a_share_email_is_a_message(client, owner):
    collection = collection_make(user=owner)

    response = client.post(f"/app/knowledge/collections/{collection.pk}/share/",
                           {"email": "a\x00b@example.com", "permission": "read"}, follow=True)

    assert response.status_code == 200 and not CollectionGrant.objects.exists()


@pytest.mark.parametrize("chunk", ["²", "abc", "9" * 30, "\x00"])
def test_a_chunk_that_is_not_an_id_is_ignored(client, owner, chunk):
    collection = collection_make(user=owner)
    document, _ = document_create_from_file(user=owner, collection=collection,
                                            file=upload("lamps.txt", "Lamps.", "text/plain"))

    assert client.get(f"/app/knowledge/documents/{document.pk}/", {"chunk": chunk}).status_code == 200


@pytest.mark.parametrize(("params", "message"), [
    ({"q": "lamp", "collection": "²"}, "Choose a collection"),
    ({"q": "lamp", "collection": "abc"}, "Choose a collection"),
    ({"q": "\x00"}, "control character"),
    ({"q": "lamp\x00s"}, "control character"),
])
def test_search_with_bad_parameters_is_a_400_with_a_message(client, owner, params, message):
    response = client.get("/app/knowledge/search/", params)

    assert response.status_code == 400 and message in response.content.decode()
