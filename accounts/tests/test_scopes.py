"""API key scopes: every API view declares one, a key without it gets a 403 that names it, and
the owner/member/outsider world reaches only its own rows through every endpoint.

The endpoints come from the URLconf, so a new API view without a row in ROWS fails here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.urls import URLResolver, get_resolver
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from accounts.apikeys import SCOPES
from accounts.models import ApiKey, Team, User
from accounts.permissions import HasScope
from accounts.services import apikey_create
from accounts.tests.factories import user_make
from chat.models import Conversation
from chat.services import conversation_rename
from chat.tests.factories import conversation_make
from inference.services import usage_record_create
from knowledge.models import Chunk, Collection, Document
from knowledge.services import document_create_from_text
from knowledge.tests.factories import collection_make, team_make

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
# Public by design: the OpenAPI schema and its Swagger page need no key (drf-spectacular's
# SERVE_PERMISSIONS is AllowAny), so they carry no scope.
PUBLIC_VIEWS = {SpectacularAPIView, SpectacularSwaggerView, SpectacularSwaggerSplitView}
# In every owner row a member or outsider could leak: the owner's email, collection, document,
# conversation title and usage request id.
SECRET = "ownersecret7f3a"


def api_views(resolver: URLResolver | None = None, prefix: str = "/") -> Iterator[tuple[str, type[APIView]]]:
    """(route, view class) for every DRF view in the URLconf, e.g. ("/api/me/", MeApi)."""
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            yield from api_views(pattern, prefix + str(pattern.pattern))
            continue
        view = getattr(pattern.callback, "view_class", None)
        if isinstance(view, type) and issubclass(view, APIView):
            yield prefix + str(pattern.pattern), view


def api_endpoints() -> list[tuple[str, str]]:
    """(METHOD, route) of every operation of every API view that API keys may call."""
    return sorted({(method.upper(), route) for route, view in api_views() if view not in PUBLIC_VIEWS
                   for method in METHODS if hasattr(view, method)})


# ----------------------------------------------------------------------------- the world


@dataclass
class World:
    owner: User
    member: User
    outsider: User
    team: Team
    private: Collection
    team_collection: Collection
    document: Document
    conversation: Conversation
    request_id: str


@pytest.fixture
def world(bundled_models) -> World:
    """An owner with one of everything, a member of the owner's team, and an outsider."""
    owner = user_make(email=f"{SECRET}@example.com")
    member, outsider = user_make(email="member@example.com"), user_make(email="outsider@example.com")
    team = team_make(owner=owner, members=[member], name="Core")
    private = collection_make(user=owner, name=f"Notes {SECRET}")
    team_collection = collection_make(user=owner, team=team, name="Core team")
    document, _ = document_create_from_text(user=owner, collection=private, title=f"Doc {SECRET}",
                                            text="The owner's private notes.")
    conversation = conversation_rename(conversation=conversation_make(user=owner), title=f"Chat {SECRET}")
    request_id = f"req-{SECRET}"
    usage_record_create(request_id=request_id, user_id=owner.pk, api_key_id=None, spec_name="smollm2-135m-ct2",
                        route_alias="chat-default", task="chat", prompt_tokens=12, completion_tokens=3)
    return World(owner, member, outsider, team, private, team_collection, document, conversation, request_id)


def client_with(user: User, scopes: list[str]) -> APIClient:
    """An API client authenticated by a real API key of `user` holding exactly `scopes`."""
    _, key = apikey_create(user=user, name="scopes test", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    """One operation: the scope it needs, a real URL and body for it, and its success status."""

    scope: str
    path: Callable[[World], str]
    ok: int
    body: Callable[[World], dict] | None = None
    format: str = "json"
    # The URL or body names one of the owner's rows, so a member or outsider must get 403/404.
    owned: bool = False
    # Staff only (the analytics API): the owner is made staff for the allowed call; others get 403.
    staff: bool = False


def _fixed(path: str) -> Callable[[World], str]:
    return lambda w: path


def _conversation(w: World) -> str:
    return f"/api/conversations/{w.conversation.pk}/"


def _document(w: World) -> str:
    return f"/api/knowledge/documents/{w.document.pk}"


def _passage(w: World) -> str:
    """A passage of the owner's document, stored here as ingest would (no worker in these tests)."""
    chunk = Chunk.objects.filter(document=w.document).first() or Chunk.objects.create(
        document=w.document, collection=w.private, ordinal=0, text=f"Passage {SECRET}", start_offset=0,
        end_offset=20, token_count=3, embedding=[1.0] + [0.0] * 383)
    Document.objects.filter(pk=w.document.pk).update(status=Document.Status.READY)
    return f"/api/knowledge/passages/{chunk.pk}"


def _analytics_funnel(w: World) -> str:
    """Two recorded events, so the funnel's step names are known ones."""
    from django.utils import timezone

    from onboarding.models import AnalyticsEvent

    now = timezone.now()
    AnalyticsEvent.objects.bulk_create([AnalyticsEvent(name=name, at=now, source="server", user=w.owner)
                                        for name in ("signed_up", "email_verified")])
    return "/api/analytics/funnel?step=signed_up&step=email_verified"


# Rows with ok=400 are endpoints whose success needs a model worker (a reply, an embedding, a
# transcript, speech). Their body fails validation, which runs after the scope check, so a 400
# shows the key got past authentication and scopes; no worker is started here.
ROWS: dict[tuple[str, str], Row] = {
    ("GET", "/api/me/"): Row("account:read", _fixed("/api/me/"), 200),
    ("GET", "/api/billing/status/"): Row("billing:read", _fixed("/api/billing/status/"), 200),
    ("GET", "/api/usage/"): Row("usage:read", _fixed("/api/usage/"), 200),
    ("GET", "/api/usage/records/"): Row("usage:read", _fixed("/api/usage/records/"), 200),
    ("GET", "/api/usage/records/<str:request_id>/"): Row(
        "usage:read", lambda w: f"/api/usage/records/{w.request_id}/", 200, owned=True),
    ("GET", "/api/assistants/"): Row("inference", _fixed("/api/assistants/"), 200),
    ("GET", "/api/conversations/"): Row("inference", _fixed("/api/conversations/"), 200),
    ("POST", "/api/conversations/"): Row("inference", _fixed("/api/conversations/"), 201,
                                         body=lambda w: {"assistant": "general"}),
    ("GET", "/api/conversations/<int:conversation_id>/"): Row("inference", _conversation, 200, owned=True),
    ("PATCH", "/api/conversations/<int:conversation_id>/"): Row(
        "inference", _conversation, 200, body=lambda w: {"title": "Renamed"}, owned=True),
    ("DELETE", "/api/conversations/<int:conversation_id>/"): Row("inference", _conversation, 204, owned=True),
    ("POST", "/api/conversations/<int:conversation_id>/messages"): Row(
        "inference", lambda w: f"/api/conversations/{w.conversation.pk}/messages", 400,
        body=lambda w: {"text": ""}, owned=True),
    ("GET", "/v1/models"): Row("inference", _fixed("/v1/models"), 200),
    ("POST", "/v1/chat/completions"): Row("inference", _fixed("/v1/chat/completions"), 400,
                                          body=lambda w: {"model": "chat-default", "messages": []}),
    ("POST", "/v1/embeddings"): Row("inference", _fixed("/v1/embeddings"), 400,
                                    body=lambda w: {"model": "embed-default"}),
    ("POST", "/v1/audio/transcriptions"): Row("inference", _fixed("/v1/audio/transcriptions"), 400,
                                              body=lambda w: {"model": "stt-default"}, format="multipart"),
    ("POST", "/v1/audio/speech"): Row("inference", _fixed("/v1/audio/speech"), 400,
                                      body=lambda w: {"model": "tts-default", "voice": "joe"}),
    ("GET", "/api/knowledge/collections"): Row("knowledge", _fixed("/api/knowledge/collections"), 200),
    ("POST", "/api/knowledge/collections"): Row("knowledge", _fixed("/api/knowledge/collections"), 201,
                                                body=lambda w: {"name": "New"}),
    # 202: ingest runs in the background (its task is enqueued on commit, which never comes here).
    ("POST", "/api/knowledge/collections/<int:collection_id>/documents"): Row(
        "knowledge", lambda w: f"/api/knowledge/collections/{w.private.pk}/documents", 202,
        body=lambda w: {"title": "Hello", "text": "Hello there."}, owned=True),
    ("GET", "/api/knowledge/collections/<int:collection_id>/documents/list"): Row(
        "knowledge", lambda w: f"/api/knowledge/collections/{w.private.pk}/documents/list", 200, owned=True),
    ("GET", "/api/knowledge/documents/<int:document_id>"): Row("knowledge", _document, 200, owned=True),
    ("DELETE", "/api/knowledge/documents/<int:document_id>"): Row("knowledge", _document, 204, owned=True),
    # Retrieval embeds the query on a gpu worker, so these send an empty query (400).
    ("POST", "/api/knowledge/query"): Row("knowledge", _fixed("/api/knowledge/query"), 400,
                                          body=lambda w: {"query": ""}),
    ("POST", "/rag/ingest"): Row("knowledge", _fixed("/rag/ingest"), 202, owned=True,
                                 body=lambda w: {"collection": w.private.pk, "text": "Hello again."}),
    ("POST", "/rag/query"): Row("knowledge", _fixed("/rag/query"), 400, body=lambda w: {"query": ""}),
    ("GET", "/api/knowledge/passages/<int:chunk_id>"): Row("knowledge", _passage, 200, owned=True),
    ("GET", "/api/analytics/timeseries"): Row("analytics:read", _fixed("/api/analytics/timeseries"), 200, staff=True),
    ("GET", "/api/analytics/top"): Row("analytics:read", _fixed("/api/analytics/top?dimension=pages"), 200,
                                       staff=True),
    ("GET", "/api/analytics/events"): Row("analytics:read", _fixed("/api/analytics/events"), 200, staff=True),
    ("GET", "/api/analytics/funnel"): Row("analytics:read", _analytics_funnel, 200, staff=True),
}


def call(client: APIClient, method: str, row: Row, world: World):
    body = row.body(world) if row.body else None
    return getattr(client, method.lower())(row.path(world), body, format=row.format if body is not None else None)


def row_for(method: str, route: str) -> Row:
    row = ROWS.get((method, route))
    if row is None:
        pytest.fail(f"{method} {route} has no row in ROWS: add one with its scope, a real URL and its success status.")
    return row


# ----------------------------------------------------------------------------- tests


def test_every_api_view_declares_a_known_scope_and_checks_it():
    views = list(api_views())
    assert len(views) > 20, "the URLconf walk found too few API views; has the walk broken?"
    problems, used = [], set()
    for route, view in views:
        if view in PUBLIC_VIEWS:
            if list(view.permission_classes) != [AllowAny]:
                problems.append(f"{route} ({view.__name__}) is listed as public but is not AllowAny.")
            continue
        scope = getattr(view, "scope", None)
        used.add(scope)
        if scope not in SCOPES:
            problems.append(f"{route} ({view.__name__}) has scope {scope!r}; set `scope` to one of {SCOPES}.")
        if not any(isinstance(p, type) and issubclass(p, HasScope) for p in view.permission_classes):
            problems.append(f"{route} ({view.__name__}) does not check scopes; add HasScope to permission_classes.")
    assert not problems, "\n".join(problems)
    assert used == set(SCOPES), f"scopes no view uses: {set(SCOPES) - used}"


def test_every_row_is_a_real_endpoint():
    stale = set(ROWS) - set(api_endpoints())
    assert not stale, f"ROWS lists endpoints the URLconf no longer has: {sorted(stale)}"


@pytest.mark.parametrize(("method", "route"), api_endpoints())
def test_endpoint_needs_its_scope(method: str, route: str, world: World):
    row = row_for(method, route)
    others = [scope for scope in SCOPES if scope != row.scope]
    if row.staff:
        User.objects.filter(pk=world.owner.pk).update(is_staff=True)

    anonymous = call(APIClient(), method, row, world)
    denied = call(client_with(world.owner, others), method, row, world)
    allowed = call(client_with(world.owner, [row.scope]), method, row, world)

    assert anonymous.status_code == 401, anonymous.content
    assert denied.status_code == 403, denied.content
    message = denied.json()["error"]["message"]
    assert f"`{row.scope}`" in message and "API keys page" in message, message
    assert allowed.status_code == row.ok, allowed.content
    assert allowed.status_code not in (401, 403)


def test_members_and_outsiders_reach_only_their_own_rows(world: World):
    """Keys holding every scope: the owner's rows are 403/404 to others, and no list shows them."""
    problems = []
    for person in (world.member, world.outsider):
        client = client_with(person, list(SCOPES))
        for method, route in api_endpoints():
            row = row_for(method, route)
            response = call(client, method, row, world)
            who = f"{person.email}: {method} {route} gave {response.status_code}"
            if row.owned and response.status_code not in (403, 404):
                problems.append(f"{who}; expected 403 or 404")
            if row.staff and response.status_code != 403:
                problems.append(f"{who}; staff only, expected 403")
            if SECRET in response.content.decode(errors="replace"):
                problems.append(f"{who} and showed the owner's rows")
    assert not problems, "\n".join(problems)
    world.conversation.refresh_from_db()
    assert world.conversation.title == f"Chat {SECRET}"
    assert Document.objects.filter(pk=world.document.pk).exists()
    assert not Document.objects.filter(collection=world.private).exclude(pk=world.document.pk).exists()


class _Unscoped(APIView):
    permission_classes = [HasScope]

    def get(self, request) -> Response:
        return Response({"ok": True})


def test_a_view_without_a_scope_refuses_api_keys_but_not_sessions():
    user = user_make()
    api_key, _ = apikey_create(user=user, name="all", scopes=list(SCOPES))
    factory = APIRequestFactory()

    with_key = factory.get("/unscoped/")
    force_authenticate(with_key, user=user, token=api_key)
    with_session = factory.get("/unscoped/")
    force_authenticate(with_session, user=user)

    refused = _Unscoped.as_view()(with_key)
    assert refused.status_code == 403
    assert "does not accept API keys" in refused.data["error"]["message"]
    assert _Unscoped.as_view()(with_session).status_code == 200


def test_session_users_need_no_scope(client, world: World):
    client.force_login(world.owner)

    assert client.get("/api/me/").json()["email"] == world.owner.email
    assert client.get("/api/billing/status/").status_code == 200


def test_migration_grants_account_read_to_keys_that_held_every_scope():
    migration = importlib.import_module("accounts.migrations.0003_apikey_account_read_scope")
    user = user_make()
    apikey_create(user=user, name="old default", scopes=list(migration.SCOPES_BEFORE), enforce_plan=False)
    apikey_create(user=user, name="narrow", scopes=["inference", "usage:read"], enforce_plan=False)
    apikey_create(user=user, name="new", scopes=list(SCOPES), enforce_plan=False)

    migration.grant_account_read(apps, None)
    migration.grant_account_read(apps, None)  # a second run changes nothing

    scopes = dict(ApiKey.objects.filter(user=user).values_list("name", "scopes"))
    assert scopes == {"old default": [*migration.SCOPES_BEFORE, "account:read"],
                      "narrow": ["inference", "usage:read"], "new": list(SCOPES)}
