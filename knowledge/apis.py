"""Parley's knowledge API: collections, documents (ingest and status) and retrieval.

One view per operation. Where one path carries two operations (list and create a collection;
read and delete a document), the class has one method per operation, each with its own input
and output serializers and operation id: DRF routes by path, and the paths are what clients
and the OpenAPI schema expect.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasScope
from accounts.selectors import teams_of_user
from common.errors import ApplicationError
from knowledge import services
from knowledge.answering import answer_grounded
from knowledge.models import Document
from knowledge.passages import passage_plain
from knowledge.selectors import (
    ACCESS_WRITE,
    MAX_QUERY_CHARS,
    chunks_search,
    citation_url,
    collection_get_for,
    collections_readable,
    document_get_for,
    documents_of_collection,
    passage_get_for,
    relevance_floor,
)


class KnowledgeApi(APIView):
    scope = "knowledge"
    permission_classes = [HasScope]


# --------------------------------------------------------------------------- collections


class CollectionOutput(serializers.Serializer):
    class Meta:
        ref_name = "KnowledgeCollection"

    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    owner_user_id = serializers.IntegerField(allow_null=True)
    owner_team_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class CollectionsApi(KnowledgeApi):
    class CreateInput(serializers.Serializer):
        class Meta:
            ref_name = "KnowledgeCollectionCreateInput"

        name = serializers.CharField(max_length=120)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        team_id = serializers.IntegerField(required=False, allow_null=True, default=None,
                                           help_text="Owned by this team (you must belong to it); else by you.")

    @extend_schema(responses=CollectionOutput(many=True), operation_id="knowledge_collections_list",
                   summary="Collections you may read")
    def get(self, request: Request) -> Response:
        return Response(CollectionOutput(collections_readable(user=request.user), many=True).data)

    @extend_schema(request=CreateInput, responses={201: CollectionOutput}, operation_id="knowledge_collections_create",
                   summary="Create a collection")
    def post(self, request: Request) -> Response:
        data = self.CreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        team = None
        if data.validated_data["team_id"] is not None:
            team = teams_of_user(user=request.user).filter(pk=data.validated_data["team_id"]).first()
            if team is None:
                raise ApplicationError("You are not a member of that team.", code="not_found", status=404)
        collection = services.collection_create(user=request.user, name=data.validated_data["name"],
                                                description=data.validated_data["description"], team=team)
        return Response(CollectionOutput(collection).data, status=status.HTTP_201_CREATED)


# --------------------------------------------------------------------------- documents


class DocumentOutput(serializers.Serializer):
    class Meta:
        ref_name = "KnowledgeDocument"

    id = serializers.IntegerField()
    collection_id = serializers.IntegerField()
    title = serializers.CharField()
    source = serializers.CharField()
    source_url = serializers.CharField()
    filename = serializers.CharField()
    mime = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.IntegerField()
    error = serializers.CharField()
    chunk_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    status_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    def get_status_url(self, document: Document) -> str:
        return reverse("api-knowledge-document", kwargs={"document_id": document.pk})

    def get_page_url(self, document: Document) -> str:
        return reverse("knowledge:document_detail", kwargs={"document_id": document.pk})


class DocumentAcceptedOutput(DocumentOutput):
    class Meta:
        ref_name = "KnowledgeDocumentAccepted"

    created = serializers.BooleanField(help_text="False when the same file was already in the collection.")


class DocumentInput(serializers.Serializer):
    """Exactly one of file (multipart), url or text."""

    class Meta:
        ref_name = "KnowledgeDocumentInput"

    file = serializers.FileField(required=False, help_text="PDF, DOCX, HTML, Markdown or plain text.")
    url = serializers.URLField(required=False, max_length=2000, help_text="A page or file for Parley to fetch.")
    text = serializers.CharField(required=False, trim_whitespace=False, help_text="The document's text itself.")
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)

    def validate(self, attrs: dict) -> dict:
        given = [name for name in ("file", "url", "text") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError("Send exactly one of `file` (multipart), `url` or `text`.")
        return attrs


def _document_add(request: Request, collection_id: int, data: dict) -> Response:
    collection = collection_get_for(user=request.user, collection_id=collection_id, need=ACCESS_WRITE)
    if data.get("file"):
        document, created = services.document_create_from_file(
            user=request.user, collection=collection, file=data["file"], title=data["title"],
            source=Document.Source.UPLOAD if request.auth is None else Document.Source.API,
        )
    elif data.get("url"):
        document, created = services.document_create_from_url(
            user=request.user, collection=collection, url=data["url"], title=data["title"])
    else:
        document, created = services.document_create_from_text(
            user=request.user, collection=collection, text=data["text"], title=data["title"])
    document.created = created
    body = DocumentAcceptedOutput(document).data
    response = Response(body, status=status.HTTP_202_ACCEPTED)
    response["Location"] = body["status_url"]
    return response


class DocumentCreateApi(KnowledgeApi):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={"multipart/form-data": DocumentInput, "application/json": DocumentInput},
        responses={202: DocumentAcceptedOutput}, operation_id="knowledge_documents_create",
        summary="Add a document (file, URL or text); ingest runs in the background",
        description="202 with the document and `status_url` to poll. The same file twice in a collection "
        "returns the first document (`created: false`).",
    )
    def post(self, request: Request, collection_id: int) -> Response:
        data = DocumentInput(data=request.data)
        data.is_valid(raise_exception=True)
        return _document_add(request, collection_id, data.validated_data)


class DocumentListApi(KnowledgeApi):
    @extend_schema(responses=DocumentOutput(many=True), operation_id="knowledge_documents_list",
                   summary="Documents of a collection")
    def get(self, request: Request, collection_id: int) -> Response:
        collection = collection_get_for(user=request.user, collection_id=collection_id)
        return Response(DocumentOutput(documents_of_collection(collection=collection), many=True).data)


class DocumentApi(KnowledgeApi):
    @extend_schema(responses=DocumentOutput, operation_id="knowledge_documents_retrieve",
                   summary="A document and its ingest status")
    def get(self, request: Request, document_id: int) -> Response:
        return Response(DocumentOutput(document_get_for(user=request.user, document_id=document_id)).data)

    @extend_schema(request=None, responses={204: None}, operation_id="knowledge_documents_delete",
                   summary="Delete a document and its chunks")
    def delete(self, request: Request, document_id: int) -> Response:
        document = document_get_for(user=request.user, document_id=document_id, need=ACCESS_WRITE)
        services.document_delete(user=request.user, document=document)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RagIngestApi(KnowledgeApi):
    """The seed's `/rag/ingest`: the collection goes in the body."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    class Input(DocumentInput):
        class Meta:
            ref_name = "RagIngestInput"

        collection = serializers.IntegerField()

    @extend_schema(request={"multipart/form-data": Input, "application/json": Input},
                   responses={202: DocumentAcceptedOutput}, operation_id="rag_ingest",
                   summary="Alias of POST /api/knowledge/collections/{id}/documents")
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return _document_add(request, data.validated_data["collection"], data.validated_data)


# --------------------------------------------------------------------------- retrieval


class PassageOutput(serializers.Serializer):
    class Meta:
        ref_name = "KnowledgePassage"

    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    collection_id = serializers.IntegerField()
    ordinal = serializers.IntegerField()
    text = serializers.CharField()
    start_offset = serializers.IntegerField()
    end_offset = serializers.IntegerField()
    score = serializers.FloatField(help_text="Reciprocal-rank fusion score: only its order means anything.")
    distance = serializers.FloatField(allow_null=True, help_text="Cosine distance to the query (0 = same "
                                      "meaning); null in text-only searches.")
    relevance = serializers.FloatField(allow_null=True, help_text="1 − distance, clamped to 0..1.")
    collection_name = serializers.CharField()
    url = serializers.CharField()


class CitationOutput(serializers.Serializer):
    class Meta:
        ref_name = "KnowledgeCitation"

    number = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    chunk_id = serializers.IntegerField()
    start_offset = serializers.IntegerField()
    end_offset = serializers.IntegerField()
    url = serializers.CharField()
    collection_id = serializers.IntegerField(allow_null=True)
    collection_name = serializers.CharField()
    passage_url = serializers.CharField(help_text="GET it for the passage as JSON.")
    cited = serializers.BooleanField(help_text="The answer refers to this source as [number].")


class QueryApi(KnowledgeApi):
    class Input(serializers.Serializer):
        class Meta:
            ref_name = "KnowledgeQueryInput"

        query = serializers.CharField(max_length=MAX_QUERY_CHARS, error_messages={
            "max_length": f"The query is too long; the limit is {MAX_QUERY_CHARS:,} characters."})
        collections = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True,
                                            default=None, help_text="Search only these; default: all you may read.")
        k = serializers.IntegerField(min_value=1, max_value=20, default=5)
        answer = serializers.BooleanField(default=False, help_text="Also write a grounded answer with citations.")
        model = serializers.CharField(required=False, default="chat-default", help_text="Chat model or route.")
        max_tokens = serializers.IntegerField(min_value=1, max_value=2048, default=384,
                                              help_text="Longest answer, in tokens.")

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "KnowledgeQueryOutput"

        query = serializers.CharField()
        passages = PassageOutput(many=True)
        answer = serializers.CharField(allow_null=True)
        citations = CitationOutput(many=True)
        model = serializers.CharField(allow_null=True)
        model_note = serializers.CharField(allow_blank=True, help_text="Why a fallback model answered, if one did.")
        floor = serializers.FloatField(
            allow_null=True, help_text="The relevance floor applied: passages farther than this cosine distance "
            "from the query are left out unless they contain every word of the query, or half of its words "
            "and two of them. Null: no floor.")

    @extend_schema(request=Input, responses=Output, operation_id="knowledge_query",
                   summary="Ranked passages from your collections, optionally a grounded answer",
                   parameters=[OpenApiParameter("answer", bool, description="Same as the body field.")])
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        params = data.validated_data
        api_key = request.auth if hasattr(request.auth, "scopes") else None
        if params["answer"] or request.query_params.get("answer") in ("1", "true", "True"):
            result = answer_grounded(user=request.user, query=params["query"], collections=params["collections"],
                                     k=params["k"], model=params["model"], max_tokens=params["max_tokens"],
                                     api_key=api_key, request=request)
        else:
            passages = chunks_search(user=request.user, query=params["query"], collections=params["collections"],
                                     k=params["k"], api_key=api_key)
            result = {"passages": passages, "answer": None, "citations": [], "model": None, "model_note": ""}
        return Response(self.Output({"query": params["query"], **result, "floor": relevance_floor()}).data)


class RagQueryApi(QueryApi):
    @extend_schema(request=QueryApi.Input, responses=QueryApi.Output, operation_id="rag_query",
                   summary="Alias of POST /api/knowledge/query")
    def post(self, request: Request) -> Response:
        return super().post(request)


class PassageApi(KnowledgeApi):
    """One passage for a side panel (a chat citation opened without leaving the chat)."""

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "KnowledgePassageDetail"

        chunk_id = serializers.IntegerField()
        ordinal = serializers.IntegerField()
        document_id = serializers.IntegerField()
        document_title = serializers.CharField()
        collection_id = serializers.IntegerField()
        collection_name = serializers.CharField()
        text = serializers.CharField(help_text="The passage as stored.")
        plain_text = serializers.CharField(help_text="The passage with Markdown syntax removed, for display.")
        start_offset = serializers.IntegerField()
        end_offset = serializers.IntegerField()
        document_url = serializers.CharField(help_text="The document's page, scrolled to this passage.")

    @extend_schema(responses=Output, operation_id="knowledge_passages_retrieve",
                   summary="One passage, with its document and collection (404 unless you may read it)")
    def get(self, request: Request, chunk_id: int) -> Response:
        chunk = passage_get_for(user=request.user, chunk_id=chunk_id)
        return Response(self.Output({
            "chunk_id": chunk.pk, "ordinal": chunk.ordinal, "document_id": chunk.document_id,
            "document_title": chunk.document.title, "collection_id": chunk.collection_id,
            "collection_name": chunk.collection.name, "text": chunk.text, "plain_text": passage_plain(chunk.text),
            "start_offset": chunk.start_offset, "end_offset": chunk.end_offset,
            "document_url": citation_url(document_id=chunk.document_id, chunk_id=chunk.pk),
        }).data)
