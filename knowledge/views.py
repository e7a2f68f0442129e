"""The knowledge pages: collections, a collection's documents with upload and sharing, a document's
passages, and search. Uploads and live progress go through the JSON API from static/knowledge/."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import memberships_of_user, teams_of_user
from common.errors import ApplicationError
from common.forms import form_error_message, integer_param
from knowledge import services
from knowledge.forms import CollectionCreateForm, CollectionShareForm, SearchForm
from knowledge.models import CollectionGrant
from knowledge.selectors import (
    ACCESS_MANAGE,
    ACCESS_WRITE,
    MAX_QUERY_CHARS,
    chunks_of_document,
    chunks_search,
    collection_get_for,
    collections_readable,
    collections_with_counts,
    document_get_for,
    documents_of_collection,
    grants_of_collection,
    relevance_floor,
)


def _error_page(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return render(request, "knowledge/error.html", {"message": exc.message}, status=exc.status)


@login_required
def collections_page(request: HttpRequest) -> HttpResponse:
    """List readable collections; POST creates one."""
    error = None
    if request.method == "POST":
        form = CollectionCreateForm(request.POST)
        try:
            if not form.is_valid():
                raise ApplicationError(form_error_message(form))
            team = None
            if (team_id := form.cleaned_data["team"]) is not None:
                team = teams_of_user(user=request.user).filter(pk=team_id).first()
                if team is None:
                    raise ApplicationError("You are not a member of that team.")
            collection = services.collection_create(user=request.user, name=form.cleaned_data["name"],
                                                    description=form.cleaned_data["description"], team=team)
        except ApplicationError as exc:
            error = exc.message
        else:
            return redirect("knowledge:collection_detail", collection_id=collection.pk)
    return render(request, "knowledge/collections.html", {
        "collections": collections_with_counts(user=request.user),
        "teams": teams_of_user(user=request.user).filter(is_personal=False),
        "error": error,
    }, status=400 if error else 200)


@login_required
def collection_detail(request: HttpRequest, collection_id: int) -> HttpResponse:
    try:
        collection = collection_get_for(user=request.user, collection_id=collection_id)
    except ApplicationError as exc:
        return _error_page(request, exc)
    can_manage = collection.access == ACCESS_MANAGE
    return render(request, "knowledge/collection_detail.html", {
        "collection": collection,
        "documents": documents_of_collection(collection=collection),
        "can_write": collection.access in (ACCESS_WRITE, ACCESS_MANAGE),
        "can_manage": can_manage,
        "grants": grants_of_collection(collection=collection) if can_manage else [],
        "teams": [m.team for m in memberships_of_user(user=request.user)] if can_manage else [],
        "permissions": CollectionGrant.Permission.choices,
    })


@login_required
@require_POST
def collection_share(request: HttpRequest, collection_id: int) -> HttpResponse:
    try:
        collection = collection_get_for(user=request.user, collection_id=collection_id, need=ACCESS_MANAGE)
        form = CollectionShareForm(request.POST)
        if not form.is_valid():
            raise ApplicationError(form_error_message(form))
        team = None
        if (team_id := form.cleaned_data["team"]) is not None:
            team = teams_of_user(user=request.user).filter(pk=team_id).first()
            if team is None:
                raise ApplicationError("You can share only with teams you belong to.")
        grant = services.collection_share(user=request.user, collection=collection,
                                          permission=form.cleaned_data["permission"] or "read",
                                          grantee_email=form.cleaned_data["email"], team=team)
    except ApplicationError as exc:
        if exc.status == 404:
            return _error_page(request, exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Shared with {grant.user or grant.team} ({grant.get_permission_display().lower()}).")
    return redirect("knowledge:collection_detail", collection_id=collection_id)


@login_required
@require_POST
def grant_revoke(request: HttpRequest, collection_id: int, grant_id: int) -> HttpResponse:
    try:
        collection = collection_get_for(user=request.user, collection_id=collection_id, need=ACCESS_MANAGE)
        grant = grants_of_collection(collection=collection).filter(pk=grant_id).first()
        if grant is None:
            raise ApplicationError("No such grant.", status=404)
        services.grant_revoke(user=request.user, grant=grant)
    except ApplicationError as exc:
        return _error_page(request, exc)
    messages.success(request, f"{grant.user or grant.team} no longer has access.")
    return redirect("knowledge:collection_detail", collection_id=collection_id)


@login_required
@require_POST
def collection_delete(request: HttpRequest, collection_id: int) -> HttpResponse:
    try:
        collection = collection_get_for(user=request.user, collection_id=collection_id, need=ACCESS_MANAGE)
        services.collection_delete(user=request.user, collection=collection)
    except ApplicationError as exc:
        return _error_page(request, exc)
    messages.success(request, f"Deleted the collection {collection.name} and its documents.")
    return redirect("knowledge:collections")


@login_required
@require_POST
def document_upload(request: HttpRequest, collection_id: int) -> HttpResponse:
    """The form fallback for browsers without JavaScript: files in, back to the collection."""
    try:
        collection = collection_get_for(user=request.user, collection_id=collection_id, need=ACCESS_WRITE)
        files = request.FILES.getlist("files")
        if not files:
            raise ApplicationError("Choose at least one file.")
        for upload in files:
            services.document_create_from_file(user=request.user, collection=collection, file=upload)
    except ApplicationError as exc:
        if exc.status in (403, 404):
            return _error_page(request, exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Added {len(files)} file(s); they are being processed.")
    return redirect("knowledge:collection_detail", collection_id=collection_id)


@login_required
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    try:
        document = document_get_for(user=request.user, document_id=document_id)
    except ApplicationError as exc:
        return _error_page(request, exc)
    highlight = integer_param(request.GET.get("chunk"))
    if highlight is not None:  # a cited passage opened (the Knowledge Explorer badge)
        services.citation_open(user=request.user, document=document, chunk_id=highlight)
    return render(request, "knowledge/document_detail.html", {
        "document": document,
        "chunks": chunks_of_document(document=document),
        "highlight": highlight,
        "can_write": document.collection.access in (ACCESS_WRITE, ACCESS_MANAGE),
    })


@login_required
def document_row(request: HttpRequest, document_id: int) -> HttpResponse:
    """The document's row of the collection table, as the page renders it: the upload script puts
    this in place of its placeholder and refreshes it when ingest ends, so live rows match reloads."""
    try:
        document = document_get_for(user=request.user, document_id=document_id)
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")
    return render(request, "knowledge/_document_row.html", {
        "document": document, "can_write": document.collection.access in (ACCESS_WRITE, ACCESS_MANAGE),
    })


@login_required
@require_POST
def document_delete(request: HttpRequest, document_id: int) -> HttpResponse:
    try:
        document = document_get_for(user=request.user, document_id=document_id, need=ACCESS_WRITE)
        services.document_delete(user=request.user, document=document)
    except ApplicationError as exc:
        return _error_page(request, exc)
    messages.success(request, f"Deleted {document.title} and its passages.")
    return redirect("knowledge:collection_detail", collection_id=document.collection_id)


@login_required
@require_POST
def document_retry(request: HttpRequest, document_id: int) -> HttpResponse:
    try:
        document = document_get_for(user=request.user, document_id=document_id, need=ACCESS_WRITE)
        services.document_retry(user=request.user, document=document)
    except ApplicationError as exc:
        return _error_page(request, exc)
    return redirect("knowledge:collection_detail", collection_id=document.collection_id)


@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET)
    results, error, query, selected = [], None, "", None
    if not form.is_valid():
        error = form_error_message(form)
    else:
        query, selected = form.cleaned_data["q"], form.cleaned_data["collection"]
        if query:
            try:
                results = chunks_search(user=request.user, query=query,
                                        collections=[selected] if selected is not None else None, k=10)
            except ApplicationError as exc:
                error = exc.message
    return render(request, "knowledge/search.html", {
        "query": query, "results": results, "error": error, "max_chars": MAX_QUERY_CHARS,
        "collections": collections_readable(user=request.user), "selected": selected,
        "floor": relevance_floor(),
    }, status=400 if error else 200)
