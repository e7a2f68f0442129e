"""Assistants with their own route, collections and tools: the service's checks, the form, the owner-only
edit page, the seeded legal assistant, and the starter collections."""

from __future__ import annotations

import pytest

from accounts.tests.factories import user_make
from chat.models import Assistant, Conversation
from chat.services import assistant_create, conversation_create
from chat.starter import assistants_starter_install, starter_files
from chat.tools import KnowledgeSearch
from common.errors import ApplicationError
from knowledge.models import Document
from knowledge.selectors import collections_readable
from knowledge.tests.factories import collection_make

pytestmark = pytest.mark.django_db


def test_the_legal_assistant_is_seeded_beside_hr_and_it_with_its_tools():
    from chat.seed import assistants_seed

    assistants_seed()  # what migrations 0002 and 0009 run (a transactional test may have emptied the table)
    seeded = {a.slug: a for a in Assistant.objects.filter(owner=None)}
    assert {"legal", "hr-policy", "it-support"} <= set(seeded)
    assert seeded["legal"].tools == ["knowledge_search"]
    assert seeded["it-support"].tools == ["knowledge_search", "webhook_notify", "send_email"]


def test_an_assistant_takes_only_collections_its_owner_may_read_and_known_tools():
    owner, other = user_make(), user_make()
    mine, theirs = collection_make(user=owner), collection_make(user=other)
    with pytest.raises(ApplicationError, match=f"No such collection: {theirs.pk}"):
        assistant_create(owner=owner, name="A", system_prompt="x", knowledge_collections=[mine.pk, theirs.pk])
    with pytest.raises(ApplicationError, match="No such tool: shell"):
        assistant_create(owner=owner, name="A", system_prompt="x", tools=["shell"])
    with pytest.raises(ApplicationError) as route:
        assistant_create(owner=owner, name="A", system_prompt="x", route_alias="no-such-route", check_route=True)
    assert route.value.code == "invalid_route"

    assistant = assistant_create(owner=owner, name="A", system_prompt="x", knowledge_collections=[mine.pk],
                                 tools=["send_email", "knowledge_search"])
    assert assistant.knowledge_collections == [mine.pk]
    assert assistant.tools == ["knowledge_search", "send_email"]
    conversation = conversation_create(user=owner, assistant=assistant)
    assert conversation.use_knowledge and conversation.knowledge_collections == [mine.pk]


def test_the_form_creates_an_assistant_with_a_route_collections_and_tools(client, bundled_models):
    owner = user_make()
    collection = collection_make(user=owner, name="Handbook")
    client.force_login(owner)
    page = client.get("/app/assistants/new/")
    assert page.status_code == 200 and b"Handbook" in page.content and b"webhook_notify" in page.content
    route = bundled_models[0].name
    response = client.post("/app/assistants/new/", {
        "name": "Handbook helper", "system_prompt": "Answer from the handbook.", "route_alias": route,
        "knowledge_collections": [str(collection.pk)], "tools": ["knowledge_search"]})
    assert response.status_code == 302
    assistant = Assistant.objects.get(owner=owner, name="Handbook helper")
    assert (assistant.route_alias, assistant.knowledge_collections, assistant.tools) == \
        (route, [collection.pk], ["knowledge_search"])
    assert Conversation.objects.get(assistant=assistant).knowledge_collections == [collection.pk]

    bad = client.post("/app/assistants/new/", {"name": "X", "system_prompt": "y", "route_alias": "nope"})
    assert bad.status_code == 400 and "not a chat route or model you may use" in bad.content.decode()


def test_only_the_owner_edits_an_assistant(client):
    owner, outsider = user_make(), user_make()
    assistant = assistant_create(owner=owner, name="Mine", system_prompt="x")
    data = {"name": "Renamed", "system_prompt": "y", "tools": ["send_email"]}
    client.force_login(outsider)
    assert client.get(f"/app/assistants/{assistant.slug}/edit/").status_code == 404
    assert client.post(f"/app/assistants/{assistant.slug}/edit/", data).status_code == 404
    assert client.get("/app/assistants/legal/edit/").status_code == 404  # staff ones: in admin
    client.force_login(owner)
    assert client.post(f"/app/assistants/{assistant.slug}/edit/", data).status_code == 302
    assistant.refresh_from_db()
    assert (assistant.name, assistant.tools) == ("Renamed", ["send_email"])


def test_the_starter_collection_is_ingested_once_readable_by_everyone_and_searched(bundled_models):
    staff, someone = user_make(is_staff=True, is_superuser=True), user_make()
    [outcome] = assistants_starter_install(owner=staff, only=["hr-policy"], ingest_now=True)
    assert outcome.collection_created and outcome.documents_added == len(starter_files("hr")) == 1
    documents = Document.objects.filter(collection_id=outcome.collection_id)
    assert {d.status for d in documents} == {Document.Status.READY}
    assert outcome.collection_id in set(collections_readable(user=someone).values_list("id", flat=True))

    [again] = assistants_starter_install(owner=staff, only=["hr-policy"], ingest_now=True)
    assert (again.collection_id, again.collection_created, again.documents_added, again.documents_kept) == \
        (outcome.collection_id, False, 0, 1)

    assistant = Assistant.objects.get(slug="hr-policy")
    assert assistant.knowledge_collections[0] == outcome.collection_id
    conversation = conversation_create(user=someone, assistant=assistant)
    assert conversation.use_knowledge and outcome.collection_id in conversation.knowledge_collections
    result = KnowledgeSearch(embed_in_process=True).run(user=someone, assistant=assistant,
                                                        arguments={"query": "where do I report abusive behavior"})
    assert result.ok and "reported to the community leaders" in result.content, result.content


def test_the_starter_files_have_their_sources_and_licences_noted():
    from chat.starter import STARTER_DIR

    for directory in ("legal", "hr", "it"):
        sources = (STARTER_DIR / directory / "SOURCES.md").read_text()
        for path in starter_files(directory):
            assert f"`{path.name}`" in sources, (directory, path.name)


def test_the_starter_command_without_a_superuser_says_how_to_make_one():
    from django.core.management import CommandError, call_command

    from accounts.models import User

    User.objects.filter(is_superuser=True).update(is_superuser=False)
    with pytest.raises(CommandError, match="Run `manage.py dev_superuser`"):
        call_command("assistants_starter", "--only", "hr-policy")
    with pytest.raises(CommandError, match="No user nobody@example.com"):
        call_command("assistants_starter", "--owner", "nobody@example.com")


def _upload(user, collection, data: bytes, name: str) -> Document:
    from django.core.files.base import ContentFile

    from knowledge.services import document_create_from_file

    upload = ContentFile(data, name=name)
    upload.content_type = "text/markdown"
    document, _ = document_create_from_file(user=user, collection=collection, file=upload, enqueue=False)
    return document


def test_a_withdrawn_sample_leaves_the_starter_collection_only_where_parley_put_it_unchanged(
        bundled_models, monkeypatch):
    import hashlib
    import io

    from django.core.management import call_command

    import chat.starter

    staff, someone = user_make(is_staff=True, is_superuser=True), user_make()
    [outcome] = assistants_starter_install(owner=staff, only=["hr-policy"], ingest_now=True)
    starter = Document.objects.get(collection_id=outcome.collection_id)
    collection = starter.collection
    sample = b"# Leave policy\n\nA sample an earlier release shipped.\n"
    shipped = _upload(staff, collection, sample, "leave-policy.md")
    edited = _upload(staff, collection, sample + b"\nOur own addition.\n", "leave-policy.md")
    elsewhere = _upload(someone, collection_make(user=someone), sample, "leave-policy.md")
    monkeypatch.setattr(chat.starter, "RETIRED", {hashlib.sha256(sample).hexdigest(): "hr/leave-policy.md"})

    out = io.StringIO()
    call_command("assistants_starter", "--only", "hr-policy", "--now", stdout=out)

    assert "hr-policy: removed 1 sample document an earlier release shipped" in out.getvalue()
    remaining = set(Document.objects.values_list("pk", flat=True))
    assert shipped.pk not in remaining  # Parley's own, unchanged: withdrawn
    assert {starter.pk, edited.pk, elsewhere.pk} <= remaining  # the new text, the operator's edit, a user's copy
    out = io.StringIO()
    call_command("assistants_starter", "--only", "hr-policy", "--now", stdout=out)
    assert out.getvalue() == ""  # nothing left to do


def test_no_file_shipped_now_is_on_the_retired_list():
    import hashlib

    from chat.starter import RETIRED

    for directory in ("legal", "hr", "it"):
        for path in starter_files(directory):
            assert hashlib.sha256(path.read_bytes()).hexdigest() not in RETIRED, path
            assert f"{directory}/{path.name}" not in RETIRED.values(), path
