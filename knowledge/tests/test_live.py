"""Against a live Celery worker (ingest on `default`, query embeddings and answers on `gpu`)."""

from __future__ import annotations

import pydoc_data.topics
import random
import time

import pytest
from rest_framework.test import APIClient

from accounts.services import apikey_create
from accounts.tests.factories import user_make
from billing.tests.factories import free_plan_set
from knowledge.models import Document
from knowledge.tests.factories import collection_make, document_ready
from knowledge.tests.files import pdf_bytes, upload, zip_bomb_bytes
from knowledge.tests.world import INJECTION, VOCABULARY, world_build

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TOPICS = pydoc_data.topics.topics


def api(user) -> APIClient:
    _, key = apikey_create(user=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def wait_done(document_id: int, timeout: float = 120) -> Document:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = Document.objects.get(pk=document_id)
        if document.status in ("ready", "failed"):
            return document
        time.sleep(0.2)
    raise AssertionError(f"document {document_id} is still {document.status}")


def test_leak_200_random_queries_through_the_api(celery_worker, bundled_models):
    # Each search is one of the user's requests: 200 in a minute is past the free plan's rate (test_plans
    # and test_quotas cover that); this test is about who may read what.
    free_plan_set(requests_per_minute=100_000, tokens_per_day=100_000_000)
    world = world_build()
    users = [world.owner, world.member, world.outsider]
    clients = {user.pk: api(user) for user in users}
    all_ids = [c.pk for c in world.collections]
    rng = random.Random(7)
    seen = {user.pk: set() for user in users}
    for index in range(200):
        user = users[index % 3]
        body = {"query": " ".join(rng.sample(VOCABULARY, rng.randint(1, 4))), "k": rng.choice([5, 10])}
        if index % 10 == 0:
            body["query"] = INJECTION.format(private=world.private.pk, team=world.team.pk)
        if index % 4 == 0:
            body["collections"] = rng.sample(all_ids, rng.randint(1, len(all_ids)))
        path = "/rag/query" if index % 5 == 0 else "/api/knowledge/query"
        response = clients[user.pk].post(path, body, format="json")
        assert response.status_code == 200, response.content
        got = {p["collection_id"] for p in response.json()["passages"]}
        allowed = world.readable[user.pk] & set(body.get("collections") or world.readable[user.pk])
        assert got <= allowed, (user.email, body, got - allowed)
        seen[user.pk] |= got
    for user in users:
        assert seen[user.pk] == world.readable[user.pk]

    # Asking for someone else's collection by id gives nothing rather than an error that confirms it exists.
    response = clients[world.outsider.pk].post("/api/knowledge/query", {"query": "with statement",
                                                                        "collections": [world.private.pk]},
                                               format="json")
    assert response.status_code == 200 and response.json()["passages"] == []

    # The relevance floor: a nonsense query finds nothing, and the API says which floor applied.
    for path in ("/api/knowledge/query", "/rag/query"):
        nonsense = clients[world.owner.pk].post(path, {"query": "zxqv blorp", "k": 10}, format="json").json()
        assert nonsense["passages"] == [] and nonsense["floor"] == 0.70
    answered = clients[world.owner.pk].post("/api/knowledge/query?answer=true", {"query": "zxqv blorp"},
                                            format="json").json()
    assert answered["citations"] == [] and answered["model"] is None and "nothing to answer" in answered["answer"]

    # A grounded answer: citations point at passages the member may read.
    response = clients[world.member.pk].post("/api/knowledge/query?answer=true", {
        "query": "How does a for loop iterate over a sequence?", "model": "chat-fast", "max_tokens": 48,
    }, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["answer"] and body["model"] and 1 <= len(body["citations"]) == len(body["passages"]) <= 5
    assert {c["number"] for c in body["citations"]} == set(range(1, len(body["passages"]) + 1))
    assert body["floor"] == 0.70 and all(p["distance"] <= 0.70 or "loop" in p["text"].lower()
                                         for p in body["passages"])
    readable_docs = set(Document.objects.filter(collection_id__in=world.readable[world.member.pk])
                        .values_list("id", flat=True))
    assert {c["document_id"] for c in body["citations"]} <= readable_docs
    assert body["citations"][0]["url"].endswith(f"#chunk-{body['citations'][0]['chunk_id']}")


def test_worker_ingests_uploads_and_survives_bad_files(celery_worker, bundled_models, live_daphne):
    owner = user_make()
    collection = collection_make(user=owner)
    client = api(owner)
    url = f"/api/knowledge/collections/{collection.pk}/documents"

    def send(name: str, content: bytes) -> int:
        response = client.post(url, {"file": upload(name, content)}, format="multipart")
        assert response.status_code == 202
        return response.json()["id"]

    bomb = send("report.docx", zip_bomb_bytes(megabytes=260))  # over the default 200 MB unpacked limit
    corrupt = send("scan.pdf", b"%PDF-1.4\n%\xff\xff\n1 0 obj <<>> endobj trailer <<>>\n%%EOF")
    secret = send("secret.pdf", pdf_bytes(["The launch code is 1234."], password="pw"))
    # A loopback address is refused when it is added (the worker checks names it resolves, too).
    local = client.post(url, {"url": live_daphne["url"] + "/healthz"}, format="json")
    good = send("compound.pdf", pdf_bytes([TOPICS["with"][:2000], TOPICS["try"][:2000]]))

    assert "zip bomb" in wait_done(bomb).error
    assert "not a readable PDF" in wait_done(corrupt).error
    assert "encrypted" in wait_done(secret).error
    assert local.status_code == 400 and "private or local address" in local.json()["error"]["message"]
    document = wait_done(good)
    assert document.status == "ready" and document.chunk_count >= 6, document.error
    assert celery_worker["process"].poll() is None  # the worker is still running


FOG_MARKDOWN = (
    "# Fog Signal\n\nThe **fog signal** sounds every *30 seconds* when [visibility](http://example.com/vis) "
    "drops below two miles.\n\n```\nhorn.sound(seconds=5)\n```\n\n> Keepers log each __fog signal hour__ "
    "in the journal.\n\n<script>alert('boo')</script>\n\n" + TOPICS["pass"][:400]
)


def test_search_shows_plain_passages_with_marked_words_a_link_and_no_score(client, celery_worker, bundled_models):
    owner = user_make()
    collection = collection_make(user=owner, name="Harbour")
    document = document_ready(collection=collection, user=owner, text=FOG_MARKDOWN, name="Fog Signal.md")
    client.force_login(owner)  # the search page embeds the query on the gpu worker

    page = client.get("/app/knowledge/search/", {"q": "How often does the fog signal sound?"})

    html = page.content.decode()
    assert page.status_code == 200 and document.title == "Fog Signal"
    chunk = document.chunks.order_by("ordinal").first()
    assert f'href="/app/knowledge/documents/{document.pk}/?chunk={chunk.pk}#chunk-{chunk.pk}">Fog Signal</a>' in html
    passages = html[html.index('aria-label="Ranked passages"'):]
    assert "<mark>fog</mark> <mark>signal</mark> <mark>sounds</mark> every 30 seconds" in passages.lower()
    for raw in ("**", "](", "```", "# Fog", "__fog", "<script>", "score"):
        assert raw not in passages, raw
    assert "&lt;script&gt;alert(&#x27;boo&#x27;)&lt;/script&gt;" in passages  # shown as text, never run
    assert '<meter class="relevance"' in passages and 'aria-label="Relevance ' in passages


def test_a_nonsense_search_says_no_passages_match(client, celery_worker, bundled_models):
    owner = user_make()
    collection = collection_make(user=owner)
    document_ready(collection=collection, user=owner, text=FOG_MARKDOWN, name="fog.md")
    client.force_login(owner)  # the search page embeds the query on the gpu worker

    for params in ({"q": "zxqv blorp"}, {"q": "zxqv blorp", "collection": collection.pk}):
        page = client.get("/app/knowledge/search/", params)
        assert page.status_code == 200
        assert "No passages match “zxqv blorp”." in page.content.decode()
        assert "Ranked passages" not in page.content.decode()
