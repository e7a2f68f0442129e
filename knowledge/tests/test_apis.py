"""The knowledge API with session and API-key auth: every endpoint, and outsiders get 403/404."""

from __future__ import annotations

import pydoc_data.topics

import pytest
from rest_framework.test import APIClient

from accounts.services import apikey_create
from accounts.tests.factories import user_make
from knowledge.models import Chunk, Document
from knowledge.tests.factories import collection_make, document_ready, grant, team_make
from knowledge.tests.files import pdf_bytes, upload

pytestmark = pytest.mark.django_db

TOPICS = pydoc_data.topics.topics


def client_for(user, *, scopes: list[str] | None = None) -> APIClient:
    """An API client authenticated by a real API key of `user`."""
    client = APIClient()
    if user is not None:
        _, key = apikey_create(user=user, name="test", scopes=scopes)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def people():
    owner, member, reader, outsider = (user_make() for _ in range(4))
    team = team_make(owner=owner, members=[member])
    private = collection_make(user=owner, name="Private")
    team_collection = collection_make(user=owner, team=team, name="Team")
    grant(collection=private, by=owner, to=reader, permission="read")
    return {"owner": owner, "member": member, "reader": reader, "outsider": outsider,
            "private": private, "team": team_collection}


def test_collections_list_and_create(people):
    owner, outsider = client_for(people["owner"]), client_for(people["outsider"])

    names = [c["name"] for c in owner.get("/api/knowledge/collections").json()]
    assert names == ["Private", "Team"]
    assert outsider.get("/api/knowledge/collections").json() == []
    created = outsider.post("/api/knowledge/collections", {"name": "Mine"}, format="json")
    assert created.status_code == 201 and created.json()["owner_user_id"] == people["outsider"].pk
    # Only teams the caller belongs to.
    team_id = people["team"].owner_team_id
    assert outsider.post("/api/knowledge/collections", {"name": "X", "team_id": team_id},
                         format="json").status_code == 404
    member = client_for(people["member"])
    assert member.post("/api/knowledge/collections", {"name": "Team 2", "team_id": team_id},
                       format="json").status_code == 201
    assert APIClient().get("/api/knowledge/collections").status_code in (401, 403)


def test_document_upload_is_202_with_a_status_url_and_dedups(people):
    client = client_for(people["owner"])
    url = f"/api/knowledge/collections/{people['private'].pk}/documents"
    content = pdf_bytes([TOPICS["with"][:1500]])

    response = client.post(url, {"file": upload("with.pdf", content, "application/pdf")}, format="multipart")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["created"] is True and body["title"] == "with"
    assert body["status_url"] == f"/api/knowledge/documents/{body['id']}" == response["Location"]
    status = client.get(body["status_url"])
    assert status.status_code == 200 and status.json()["sha256"] == body["sha256"]

    again = client.post(url, {"file": upload("copy.pdf", content)}, format="multipart")
    assert again.status_code == 202 and again.json()["id"] == body["id"] and again.json()["created"] is False
    assert Document.objects.filter(collection=people["private"]).count() == 1

    listed = client.get(f"/api/knowledge/collections/{people['private'].pk}/documents/list").json()
    assert [d["id"] for d in listed] == [body["id"]]


def test_document_by_text_and_by_url_and_bad_bodies(people):
    client = client_for(people["member"])
    url = f"/api/knowledge/collections/{people['team'].pk}/documents"

    text = client.post(url, {"title": "Loops", "text": TOPICS["for"]}, format="json")
    assert text.status_code == 202 and text.json()["source"] == "api"
    by_url = client.post(url, {"url": "https://example.com/handbook.html"}, format="json")
    assert by_url.status_code == 202 and by_url.json()["source"] == "url"
    assert client.post(url, {"url": "https://example.com/handbook.html"}, format="json").json()["created"] is False

    both = client.post(url, {"text": "a", "url": "https://example.com/"}, format="json")
    assert both.status_code == 400 and "exactly one" in str(both.json())
    assert client.post(url, {"url": "ftp://example.com/x"}, format="json").status_code == 400
    assert client.post(url, {}, format="json").status_code == 400


def test_outsiders_get_404_and_readers_403_on_every_endpoint(people):
    owner = client_for(people["owner"])
    private = people["private"]
    doc = owner.post(f"/api/knowledge/collections/{private.pk}/documents", {"text": "Hello there.", "title": "Hi"},
                     format="json").json()
    outsider, reader = client_for(people["outsider"]), client_for(people["reader"])
    member = client_for(people["member"])  # in the owner's team, but the collection is the owner's own

    for client in (outsider, member):
        assert client.post(f"/api/knowledge/collections/{private.pk}/documents", {"text": "x"},
                           format="json").status_code == 404
        assert client.get(f"/api/knowledge/collections/{private.pk}/documents/list").status_code == 404
        assert client.get(f"/api/knowledge/documents/{doc['id']}").status_code == 404
        assert client.delete(f"/api/knowledge/documents/{doc['id']}").status_code == 404
        assert client.post("/rag/ingest", {"collection": private.pk, "text": "x"}, format="json").status_code == 404
    assert outsider.post("/api/knowledge/collections/999999/documents", {"text": "x"},
                         format="json").status_code == 404

    # A read grant can read, not write.
    assert reader.get(f"/api/knowledge/documents/{doc['id']}").status_code == 200
    assert reader.post(f"/api/knowledge/collections/{private.pk}/documents", {"text": "x"},
                       format="json").status_code == 403
    assert reader.delete(f"/api/knowledge/documents/{doc['id']}").status_code == 403

    # Without auth, or with a key lacking the knowledge scope.
    assert APIClient().get(f"/api/knowledge/documents/{doc['id']}").status_code in (401, 403)
    limited = client_for(people["owner"], scopes=["usage:read"])
    assert limited.get(f"/api/knowledge/documents/{doc['id']}").status_code == 403
    assert limited.post("/api/knowledge/query", {"query": "hello"}, format="json").status_code == 403


def test_delete_removes_the_document_and_its_chunks(people, bundled_models):
    document = document_ready(collection=people["team"], user=people["member"], text=TOPICS["while"])
    assert Chunk.objects.filter(document=document).exists()

    response = client_for(people["owner"]).delete(f"/api/knowledge/documents/{document.pk}")

    assert response.status_code == 204
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(document_id=document.pk).exists()


def test_query_longer_than_2000_characters_is_400(people):
    client = client_for(people["owner"])
    for path in ("/api/knowledge/query", "/rag/query"):
        response = client.post(path, {"query": "x" * 2001}, format="json")
        assert response.status_code == 400
        assert "2,000" in str(response.json())


def test_rag_ingest_alias(people):
    response = client_for(people["owner"]).post(
        "/rag/ingest", {"collection": people["private"].pk, "file": upload("notes.md", "# Notes\n\nSome text.")},
        format="multipart")
    assert response.status_code == 202 and response.json()["collection_id"] == people["private"].pk


def test_schema_lists_the_knowledge_api(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ("/api/knowledge/collections", "/api/knowledge/collections/{collection_id}/documents",
                 "/api/knowledge/documents/{document_id}", "/api/knowledge/query", "/rag/ingest", "/rag/query",
                 "/api/knowledge/passages/{chunk_id}"):
        assert path in schema["paths"], path
    assert "202" in schema["paths"]["/api/knowledge/collections/{collection_id}/documents"]["post"]["responses"]
    query = schema["paths"]["/api/knowledge/query"]["post"]["responses"]["200"]["content"]["application/json"]
    assert query["schema"]["$ref"].endswith("/KnowledgeQueryOutput")
    assert "floor" in schema["components"]["schemas"]["KnowledgeQueryOutput"]["properties"]


def test_an_upload_of_the_wrong_type_is_415_saying_why(people):
    client = client_for(people["owner"])
    url = f"/api/knowledge/collections/{people['private'].pk}/documents"

    response = client.post(url, {"file": upload("photo", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(300))},
                           format="multipart")

    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_file_type" and "photo is a PNG image" in error["message"]
    assert "Accepted: PDF, DOCX, HTML, Markdown or plain UTF-8 text" in error["message"]
    assert not Document.objects.filter(collection=people["private"]).exists()
    licence = client.post(url, {"file": upload("Apache-2.0", "Apache License\nVersion 2.0, January 2004\n")},
                          format="multipart")
    assert licence.status_code == 202 and licence.json()["title"] == "Apache-2.0"


def test_a_passage_for_the_side_panel_is_readable_only_with_its_collection(people, bundled_models):
    document = document_ready(collection=people["private"], user=people["owner"],
                              text="# Fog Signal\n\nThe **fog signal** sounds every 30 seconds.\n\n" + TOPICS["pass"])
    chunk = Chunk.objects.filter(document=document).order_by("ordinal").first()
    path = f"/api/knowledge/passages/{chunk.pk}"
    clients = {user: client_for(people[user]) for user in ("owner", "reader", "outsider", "member")}

    for user in ("owner", "reader"):  # the owner, and a user granted read
        response = clients[user].get(path)
        assert response.status_code == 200, (user, response.content)
        body = response.json()
        assert body == {
            "chunk_id": chunk.pk, "ordinal": 0, "document_id": document.pk, "document_title": document.title,
            "collection_id": people["private"].pk, "collection_name": "Private", "text": chunk.text,
            "plain_text": body["plain_text"], "start_offset": chunk.start_offset, "end_offset": chunk.end_offset,
            "document_url": f"/app/knowledge/documents/{document.pk}/?chunk={chunk.pk}#chunk-{chunk.pk}",
        }
        assert "fog signal sounds" in body["plain_text"] and "**" not in body["plain_text"]

    # An outsider, and a member of the owner's team (the collection is the owner's own): 404, nothing leaks.
    for user in ("outsider", "member"):
        response = clients[user].get(path)
        assert response.status_code == 404 and "Fog" not in response.content.decode()
    assert clients["owner"].get("/api/knowledge/passages/999999999").status_code == 404
    assert APIClient().get(path).status_code in (401, 403)
    assert client_for(people["reader"], scopes=["usage:read"]).get(path).status_code == 403

    # A passage of a document that is not ready (being re-ingested) is not served either.
    Document.objects.filter(pk=document.pk).update(status="processing")
    assert clients["owner"].get(path).status_code == 404
